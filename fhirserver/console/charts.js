// Small SVG bar charts (no library): one bar per label, the value printed above it.
const NS = 'http://www.w3.org/2000/svg';

function node(tag, attrs, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

export function bars(title, rows, { width = 520, height = 200, unit = '' } = {}) {
  const svg = node('svg', { viewBox: `0 0 ${width} ${height + 40}`, class: 'chart', role: 'img', 'aria-label': title });
  const max = Math.max(1, ...rows.map((r) => r.value));
  const step = width / Math.max(1, rows.length);
  rows.forEach((row, i) => {
    const h = Math.round((row.value / max) * (height - 30));
    const x = i * step + step * 0.15;
    svg.append(node('rect', { x, y: height - h, width: step * 0.7, height: h, class: 'bar' }));
    svg.append(node('text', { x: x + step * 0.35, y: height - h - 6, 'text-anchor': 'middle', class: 'value' },
      `${Math.round(row.value * 100) / 100}${unit}`));
    svg.append(node('text', { x: x + step * 0.35, y: height + 18, 'text-anchor': 'middle', class: 'label' }, row.label));
  });
  return svg;
}
