// The console's only way to the server: the public FHIR, CDS Hooks and DICOMweb APIs, with the SMART token
// (kept in this tab's sessionStorage, sent in the Authorization header, never put in a URL).
export const root = location.origin;
export const base = `${root}/fhir`;
export const ITEM = 'http://hr.example.org/fhir/CodeSystem/hr-item';
export const EXCEPTION = 'http://hr.example.org/fhir/CodeSystem/hr-exception';
export const NATIONAL_ID = 'urn:oid:2.16.156.10011.1.3';

export class ApiError extends Error {
  constructor(status, body) {
    const said = body && body.issue ? body.issue.map((i) => i.diagnostics).filter(Boolean).join(' ') : '';
    super(`HTTP ${status}${said ? `: ${said}` : ''}`);
    this.status = status;
    this.body = body;
  }
}

export function session() {
  return JSON.parse(sessionStorage.getItem('hr.session') || 'null');
}

export function setSession(value) {
  if (value) sessionStorage.setItem('hr.session', JSON.stringify(value));
  else sessionStorage.removeItem('hr.session');
}

function authorization() {
  const s = session();
  return s && s.access_token ? { Authorization: `Bearer ${s.access_token}` } : {};
}

export async function fhir(path, { method = 'GET', body, headers = {} } = {}) {
  const h = { Accept: 'application/fhir+json', ...authorization(), ...headers };
  if (body !== undefined) h['Content-Type'] = 'application/fhir+json';
  const url = path.startsWith('http') ? path : `${base}/${path}`;
  const answer = await fetch(url, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await answer.text();
  const data = text ? JSON.parse(text) : null;
  if (!answer.ok) throw new ApiError(answer.status, data);
  return data;
}

export async function blob(url, accept) {
  const answer = await fetch(url, { headers: { Accept: accept, ...authorization() } });
  if (!answer.ok) throw new ApiError(answer.status, null);
  return { blob: await answer.blob(), type: answer.headers.get('Content-Type') || '' };
}

export async function post(url, body) {
  const answer = await fetch(url, {
    method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authorization() },
    body: JSON.stringify(body),
  });
  if (!answer.ok) throw new ApiError(answer.status, await answer.json().catch(() => null));
  return answer.json();
}

export function entries(bundle, type) {
  return (bundle.entry || []).map((e) => e.resource).filter((r) => r && (!type || r.resourceType === type));
}

// A Parameters resource as {name: value} (repeated names become arrays).
export function values(parameters) {
  const out = {};
  for (const p of parameters.parameter || []) {
    const key = Object.keys(p).find((k) => k.startsWith('value'));
    const value = key ? p[key] : p.part || p.resource;
    if (p.name in out) out[p.name] = [].concat(out[p.name], [value]);
    else out[p.name] = value;
  }
  return out;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function toast(text, kind = 'ok') {
  const box = document.getElementById('toast');
  box.textContent = text;
  box.className = `show ${kind}`;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.className = ''; }, 6000);
}

export function today() {
  return new Date().toISOString().slice(0, 10);
}

const organizations = new Map();
export async function organization(reference) {
  if (!reference || !reference.startsWith('Organization/')) return null;
  if (!organizations.has(reference)) {
    organizations.set(reference, fhir(reference).catch(() => null));
  }
  return organizations.get(reference);
}

export function regionOf(org) {
  const ext = (org && org.extension || []).find((e) => e.url.endsWith('/hr-region'));
  return ext ? ext.valueCoding.code : '';
}

export function levelOf(org) {
  const coding = (org && org.type || []).flatMap((t) => t.coding || []).find((c) => c.system.endsWith('/hr-institution-level'));
  return coding ? coding.code : '';
}

export function download(name, data, type) {
  const url = URL.createObjectURL(data instanceof Blob ? data : new Blob([data], { type }));
  const link = el('a', { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Displays of codes this server's terminology defines (items, regions), looked up once each ($lookup).
const displays = new Map();
export async function display(system, code) {
  if (!code) return '';
  const key = `${system}|${code}`;
  if (!displays.has(key)) {
    displays.set(key, fhir(`CodeSystem/$lookup?system=${encodeURIComponent(system)}&code=${encodeURIComponent(code)}`)
      .then((answer) => values(answer).display || code).catch(() => code));
  }
  return displays.get(key);
}

export const REGION = 'http://hr.example.org/fhir/CodeSystem/hr-region';
