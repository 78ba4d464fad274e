// The queues' backlog over the last minutes as an inline SVG: a line per queue, time running
// left to right up to now, the scale up to the highest backlog seen in the window.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 140;
const PLOT = { left: 34, right: WIDTH - 6, top: 8, bottom: HEIGHT - 18 };
const MIN_TOP = 4; // an idle queue's line sits at the bottom of a small scale, not mid-chart
// The time axis spans the samples there are, from this up to the window: a page opened a
// minute ago draws its minute across the chart, not in its last fifth.
const MIN_SPAN_MS = 30 * 1000;
const SERIES_CLASSES = 4; // style.css colours .series-0 to .series-3

function svgElement(name, attributes = {}, text = "") {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text) element.textContent = text;
  return element;
}

function ago(spanMs) {
  const seconds = Math.round(spanMs / 1000);
  return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}

function axes(top, spanMs) {
  const { left, right, bottom } = PLOT;
  return [
    svgElement("line", { class: "axis", x1: left, y1: PLOT.top, x2: left, y2: bottom }),
    svgElement("line", { class: "axis", x1: left, y1: bottom, x2: right, y2: bottom }),
    svgElement("text", { class: "tick", x: left - 4, y: PLOT.top + 8, "text-anchor": "end" }, String(top)),
    svgElement("text", { class: "tick", x: left - 4, y: bottom, "text-anchor": "end" }, "0"),
    svgElement("text", { class: "tick", x: left, y: HEIGHT - 4 }, `${ago(spanMs)} ago`),
    svgElement("text", { class: "tick", x: right, y: HEIGHT - 4, "text-anchor": "end" }, "now"),
  ];
}

/** How the newest sample of a queue compares with its oldest in the window, as words. */
function trend(points) {
  const first = points[0].backlog;
  const last = points[points.length - 1].backlog;
  if (last > first) return `${last}, up ${last - first}`;
  if (last < first) return `${last}, down ${first - last}`;
  return `${last}, flat`;
}

/** Draw `samples` ({at: ms, backlog: Map queue -> backlog}, oldest first, none older than
 * `windowMs`) up to `now` into `svg`; `legend` (a list) names each line. */
export function drawBacklog(svg, legend, samples, windowMs, now) {
  const names = [...new Set(samples.flatMap((s) => [...s.backlog.keys()]))].sort();
  const top = Math.max(MIN_TOP, ...samples.flatMap((s) => [...s.backlog.values()]));
  const span = Math.min(windowMs, Math.max(MIN_SPAN_MS, now - samples[0].at));
  const x = (at) => PLOT.right - ((now - at) / span) * (PLOT.right - PLOT.left);
  const y = (backlog) => PLOT.bottom - (backlog / top) * (PLOT.bottom - PLOT.top);
  const lines = [];
  const keys = [];
  names.forEach((name, i) => {
    const points = samples
      .filter((s) => s.backlog.has(name))
      .map((s) => ({ at: s.at, backlog: s.backlog.get(name) }));
    const series = `series-${i % SERIES_CLASSES}`;
    const coordinates = points.map((p) => `${x(p.at).toFixed(1)},${y(p.backlog).toFixed(1)}`);
    lines.push(
      svgElement("polyline", { class: `line ${series}`, "data-queue": name, points: coordinates.join(" ") }),
    );
    const key = document.createElement("li");
    key.className = series;
    key.dataset.queue = name;
    key.textContent = `${name}: ${trend(points)}`;
    keys.push(key);
  });
  const said = keys.map((key) => key.textContent).join("; ");
  const label = `Backlog over the last ${ago(span)}: ${said}`;
  svg.replaceChildren(svgElement("title", {}, label), ...axes(top, span), ...lines);
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.dataset.top = String(top);
  legend.replaceChildren(...keys);
}
