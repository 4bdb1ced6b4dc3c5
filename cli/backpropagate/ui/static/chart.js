// What every chart of the UI draws with: round tick values, their labels, and an axis of ticks in SVG.
window.BackpropChart = (function () {
  // About `count` round values (1, 2 or 5 times a power of ten) covering lo..hi.
  function ticks(lo, hi, count) {
    if (hi <= lo) { hi = lo + (Math.abs(lo) || 1); }
    const raw = (hi - lo) / count, power = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map(m => m * power).find(s => s >= raw);
    const first = Math.floor(lo / step) * step, values = [];
    for (let v = first; v <= hi + step * 1e-9; v += step) values.push(+v.toPrecision(12));
    if (values[values.length - 1] < hi) values.push(+(values[values.length - 1] + step).toPrecision(12));
    return values;
  }

  const label = v => Math.abs(v) >= 1e-2 || v === 0 ? +v.toPrecision(4) + "" : v.toExponential(1);

  function axis(cls, values, place, text, anchor) {
    return values.map(v => {
      const [x1, y1, x2, y2, tx, ty] = place(v);
      return `<g class="tick ${cls}" data-value="${v}"><line x1="${x1}" y1="${y1}" x2="${x2}" y2="${y2}"></line>` +
        `<text x="${tx}" y="${ty}" text-anchor="${anchor}">${text(v)}</text></g>`;
    }).join("");
  }

  return {ticks, label, axis};
})();
