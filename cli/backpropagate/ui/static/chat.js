// Chat with the run's GGUF: the form is posted by fetch (with its CSRF token, like any form) and the answer
// read as server-sent events from the response body, each piece appended as it arrives.
(function () {
  const form = document.getElementById("chat-form"), log = document.getElementById("chat-log");
  const button = form.querySelector("button");

  function entry(cls, text) {
    const p = document.createElement("p");
    p.className = cls;
    p.textContent = text;
    log.appendChild(p);
    return p;
  }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const body = new URLSearchParams(new FormData(form));
    entry("chat-question", body.get("prompt"));
    const reply = entry("chat-answer", "");
    button.disabled = true;
    try {
      const response = await fetch(form.action, {method: "POST", body, headers: {"Accept": "text/event-stream"}});
      if (!response.ok) { reply.className = "chat-answer error"; reply.textContent = await response.text(); return; }
      const reader = response.body.getReader(), decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const {done, value} = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, {stream: true});
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = (block.match(/^event: (.*)$/m) || [])[1], data = (block.match(/^data: (.*)$/m) || [])[1];
          if (event === "token") reply.textContent += JSON.parse(data);
          else if (event === "done") { reply.textContent = JSON.parse(data).answer; reply.dataset.done = "1"; }
          else if (event === "failure") { reply.className = "chat-answer error"; reply.textContent = JSON.parse(data); }
        }
      }
    } finally {
      button.disabled = false;
      form.querySelector("textarea").value = "";
    }
  });
})();
