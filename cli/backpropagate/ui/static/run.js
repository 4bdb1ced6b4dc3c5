// The run page: draw the loss chart, then follow the run's events (server-sent events) from the
// last line the page was rendered with, so a reload or a dropped connection goes on where it was.
(function () {
  const section = document.getElementById("progress");
  const points = JSON.parse(document.getElementById("points").textContent);
  const chart = document.getElementById("chart");
  const W = 600, H = 220, PAD = 30;

  function draw() {
    if (!points.length) { chart.innerHTML = ""; return; }
    const total = Math.max(points[points.length - 1].total, 1);
    const losses = points.map(p => p.loss);
    const lo = Math.min(...losses), hi = Math.max(...losses), span = hi - lo || 1;
    const xy = points.map(p => [PAD + (W - 2 * PAD) * p.step / total, H - PAD - (H - 2 * PAD) * (p.loss - lo) / span]);
    const dots = points.map((p, i) => `<circle class="point" data-step="${p.step}" cx="${xy[i][0].toFixed(1)}" cy="${xy[i][1].toFixed(1)}" r="3"></circle>`);
    chart.innerHTML = `<text x="${PAD}" y="14">loss ${hi.toFixed(3)}</text><text x="${PAD}" y="${H - 8}">${lo.toFixed(3)}</text>` +
      `<text x="${W - PAD}" y="${H - 8}" text-anchor="end">step ${points[points.length - 1].step}/${total}</text>` +
      `<polyline fill="none" stroke="currentColor" points="${xy.map(a => a.join(",")).join(" ")}"></polyline>` + dots.join("");
    const last = points[points.length - 1];
    document.getElementById("step").textContent = last.step;
    document.getElementById("total").textContent = last.total;
    document.getElementById("loss").textContent = last.loss.toFixed(4);
  }

  draw();
  if (section.dataset.live !== "1") return;
  const source = new EventSource(`/runs/${section.dataset.run}/events?after=${section.dataset.after}`);
  source.addEventListener("run", (message) => {
    const event = JSON.parse(message.data);
    section.dataset.after = message.lastEventId;
    if (event.event === "progress" && event.stage === "train") {
      points.push({step: event.step, total: event.total, loss: event.loss});
      draw();
    } else if (event.event === "error") {
      document.getElementById("status").textContent = "failed";
    }
  });
  // Once nothing runs any more, render the page again for its final state (artifacts, verification).
  source.addEventListener("end", () => { source.close(); window.location.reload(); });
})();
