// The run page: draw the chart (loss, learning rate, held-out loss by step), then follow the run's
// events and its log (server-sent events) from where the page was rendered, so a reload or a
// dropped connection goes on where it was. Plain SVG: nothing is downloaded at run time.
(function () {
  const section = document.getElementById("progress");
  const points = JSON.parse(document.getElementById("points").textContent);
  const evals = JSON.parse(document.getElementById("evals").textContent);
  const chart = document.getElementById("chart");
  const tip = document.getElementById("chart-tip");
  const W = 640, H = 270, LEFT = 56, RIGHT = 62, TOP = 14, BOTTOM = 40;
  const plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;

  const {ticks, label, axis} = window.BackpropChart;

  function draw() {
    if (!points.length) { chart.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no steps yet</text>`; return; }
    const last = points[points.length - 1];
    const total = Math.max(last.total, 1);
    const losses = points.map(p => p.loss).concat(evals.map(e => e.loss));
    const yTicks = ticks(Math.min(...losses), Math.max(...losses), 5);
    const yLo = yTicks[0], ySpan = yTicks[yTicks.length - 1] - yLo || 1;
    const xTicks = ticks(0, total, 6).filter(v => v <= total && Number.isInteger(v));
    const lrTicks = ticks(0, Math.max(...points.map(p => p.lr)) || 1e-4, 4);
    const lrSpan = lrTicks[lrTicks.length - 1] || 1;
    const x = step => LEFT + plotW * step / total;
    const y = loss => TOP + plotH * (1 - (loss - yLo) / ySpan);
    const yLr = lr => TOP + plotH * (1 - lr / lrSpan);
    const line = (id, list, fy, key) =>
      `<polyline id="${id}" fill="none" points="${list.map(p => `${x(p.step).toFixed(1)},${fy(p[key]).toFixed(1)}`).join(" ")}"></polyline>`;
    chart.innerHTML =
      `<rect class="plot" x="${LEFT}" y="${TOP}" width="${plotW}" height="${plotH}"></rect>` +
      axis("x", xTicks, v => [x(v), TOP + plotH, x(v), TOP + plotH + 5, x(v), TOP + plotH + 17], v => v, "middle") +
      axis("y", yTicks, v => [LEFT - 5, y(v), LEFT + plotW, y(v), LEFT - 8, y(v) + 4], label, "end") +
      axis("lr", lrTicks, v => [LEFT + plotW, yLr(v), LEFT + plotW + 5, yLr(v), LEFT + plotW + 8, yLr(v) + 4], label, "start") +
      `<text class="axis-label" x="${LEFT + plotW / 2}" y="${H - 4}" text-anchor="middle">step</text>` +
      `<text class="axis-label" transform="translate(13 ${TOP + plotH / 2}) rotate(-90)" text-anchor="middle">loss</text>` +
      `<text class="axis-label lr" transform="translate(${W - 6} ${TOP + plotH / 2}) rotate(90)" text-anchor="middle">learning rate</text>` +
      line("lr-line", points, yLr, "lr") + line("loss-line", points, y, "loss") +
      (evals.length ? line("eval-line", evals, y, "loss") : "") +
      points.map(p => `<circle class="point" data-step="${p.step}" cx="${x(p.step).toFixed(1)}" cy="${y(p.loss).toFixed(1)}" r="2.5"></circle>`).join("") +
      evals.map(e => `<circle class="eval" data-step="${e.step}" cx="${x(e.step).toFixed(1)}" cy="${y(e.loss).toFixed(1)}" r="3.5"></circle>`).join("") +
      `<line id="cursor" pointer-events="none" x1="0" x2="0" y1="${TOP}" y2="${TOP + plotH}" visibility="hidden"></line>` +
      `<g class="legend" transform="translate(${LEFT + 8} ${TOP + 12})"><text class="loss">— loss</text>` +
      `<text class="lr" x="60">- - learning rate</text>${evals.length ? '<text class="eval" x="170">● held-out loss</text>' : ""}</g>`;
    chart.dataset.total = total;
    document.getElementById("step").textContent = last.step;
    document.getElementById("total").textContent = last.total;
    document.getElementById("loss").textContent = last.loss.toFixed(4);
  }

  // Hover: the values at the step under the pointer, in the line under the chart.
  function hover(event) {
    if (!points.length) return;
    const box = chart.getBoundingClientRect();
    const svgX = (event.clientX - box.left) / box.width * W;
    const total = +chart.dataset.total;
    const at = (svgX - LEFT) / plotW * total;
    const p = points.reduce((a, b) => Math.abs(b.step - at) < Math.abs(a.step - at) ? b : a);
    const e = evals.find(v => v.step === p.step);
    tip.textContent = `step ${p.step}: loss ${p.loss.toFixed(4)}, learning rate ${p.lr.toExponential(2)}` +
      (e ? `, held-out loss ${e.loss.toFixed(4)}` : "");
    const cursor = document.getElementById("cursor");
    const cx = LEFT + plotW * p.step / total;
    cursor.setAttribute("x1", cx); cursor.setAttribute("x2", cx); cursor.setAttribute("visibility", "visible");
  }
  chart.addEventListener("pointermove", hover);
  chart.addEventListener("pointerleave", () => {
    tip.innerHTML = "&nbsp;";
    const cursor = document.getElementById("cursor");
    if (cursor) cursor.setAttribute("visibility", "hidden");
  });

  draw();
  if (section.dataset.live !== "1") return;
  const source = new EventSource(`/runs/${section.dataset.run}/events?after=${section.dataset.after}`);
  source.addEventListener("run", (message) => {
    const event = JSON.parse(message.data);
    section.dataset.after = message.lastEventId;
    if (event.event === "progress" && event.stage === "train") {
      points.push({step: event.step, total: event.total, loss: event.loss, lr: event.lr});
      draw();
    } else if (event.event === "metric" && event.stage === "train" && event.key === "eval_loss" && event.step != null) {
      evals.push({step: event.step, loss: event.value});
      draw();
    } else if (event.event === "error") {
      const stopped = event.code === section.dataset.stoppedCode;
      const status = document.getElementById("status");
      status.textContent = stopped ? "stopped" : "failed";
      status.className = stopped ? "status-interrupted" : "status-failed";
    }
  });
  // The log pane: each new whole line of log.txt, the latest in view, the last LOG_LINES kept.
  const pane = document.getElementById("log-pane"), log = document.getElementById("log"), LOG_LINES = 500;
  const logSource = new EventSource(`/runs/${section.dataset.run}/log?after=${pane.dataset.after}`);
  logSource.addEventListener("log", (message) => {
    pane.dataset.after = message.lastEventId;
    log.appendChild(document.createTextNode(JSON.parse(message.data) + "\n"));
    while (log.childNodes.length > LOG_LINES) log.removeChild(log.firstChild);
    log.scrollTop = log.scrollHeight;
  });
  logSource.addEventListener("end", () => logSource.close());
  // Once nothing runs any more, render the page again for its final state (artifacts, verification).
  source.addEventListener("end", () => { source.close(); logSource.close(); window.location.reload(); });
})();
