// The compare page's chart: both runs' training loss by step on shared axes, run A solid, run B dashed.
(function () {
  const {ticks, label, axis} = window.BackpropChart;
  const curves = JSON.parse(document.getElementById("curves").textContent);
  const chart = document.getElementById("compare-chart");
  const W = 640, H = 270, LEFT = 56, RIGHT = 20, TOP = 14, BOTTOM = 40;
  const plotW = W - LEFT - RIGHT, plotH = H - TOP - BOTTOM;
  const all = curves.flatMap(c => c.points);
  if (!all.length) { chart.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no steps recorded</text>`; return; }
  const total = Math.max(...all.map(p => p.step), 1);
  const losses = all.map(p => p.loss);
  const yTicks = ticks(Math.min(...losses), Math.max(...losses), 5);
  const yLo = yTicks[0], ySpan = yTicks[yTicks.length - 1] - yLo || 1;
  const xTicks = ticks(0, total, 6).filter(v => v <= total && Number.isInteger(v));
  const x = step => LEFT + plotW * step / total;
  const y = loss => TOP + plotH * (1 - (loss - yLo) / ySpan);
  chart.innerHTML =
    `<rect class="plot" x="${LEFT}" y="${TOP}" width="${plotW}" height="${plotH}"></rect>` +
    axis("x", xTicks, v => [x(v), TOP + plotH, x(v), TOP + plotH + 5, x(v), TOP + plotH + 17], v => v, "middle") +
    axis("y", yTicks, v => [LEFT - 5, y(v), LEFT + plotW, y(v), LEFT - 8, y(v) + 4], label, "end") +
    `<text class="axis-label" x="${LEFT + plotW / 2}" y="${H - 4}" text-anchor="middle">step</text>` +
    `<text class="axis-label" transform="translate(13 ${TOP + plotH / 2}) rotate(-90)" text-anchor="middle">loss</text>` +
    curves.map((c, i) => `<polyline class="curve curve-${i}" data-run="${c.run}" fill="none" points="` +
      c.points.map(p => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" ") + `"></polyline>`).join("") +
    `<g class="legend" transform="translate(${LEFT + 8} ${TOP + 12})">` +
    curves.map((c, i) => `<text class="curve-${i}" x="${i * 150}">${i ? "- - B" : "— A"} ${c.run.slice(0, 8)}</text>`).join("") +
    `</g>`;
})();
