// The doctor's view: find the patient, see the person's results from every hospital with the recognition decision
// for this hospital, open a report and its images, use a result ("使用此结果") or re-order with a reason.
import {
  EXCEPTION, ITEM, NATIONAL_ID, REGION, display, el, entries, fhir, organization, regionOf, session, toast, values,
} from './api.js';
import { openStudy } from './viewer.js';

const REASONS = 'http://hr.example.org/fhir/ValueSet/hr-exception-reasons';
const OVERRIDE = 'http://hr.example.org/fhir/StructureDefinition/hr-override-reason';
const MARK = 'http://hr.example.org/fhir/CodeSystem/hr-mark';
const GENDER = { male: '男 male', female: '女 female', other: '其他 other', unknown: '未知 unknown' };

// The hospital the doctor acts for: the token's organization; with authentication off, the one chosen here.
function acting(ctx) {
  if (ctx.config) return (ctx.session || {}).organization || '';
  return localStorage.getItem('hr.organization') || '';
}

async function hospitalChooser(ctx, onChange) {
  if (ctx.config) return el('p', { class: 'muted' }, `本院 Acting for: ${acting(ctx)}`);
  const orgs = entries(await fhir('Organization?_count=200'), 'Organization')
    .filter((o) => (o.type || []).some((t) => (t.coding || []).some((c) => c.system.endsWith('/hr-institution-level'))));
  if (!acting(ctx) && orgs.length) localStorage.setItem('hr.organization', `Organization/${orgs[0].id}`);
  const select = el('select', { id: 'hospital', onchange: (e) => { localStorage.setItem('hr.organization', e.target.value); onChange(); } },
    orgs.map((o) => el('option', { value: `Organization/${o.id}`, selected: acting(ctx) === `Organization/${o.id}` }, o.name || o.id)));
  return el('label', { class: 'inline' }, '本院 My hospital ', select);
}

export async function doctorView(main, ctx) {
  const results = el('div', { id: 'patient-area' });
  const query = el('input', { id: 'search', placeholder: '身份证号、姓名或病历号 National ID, name or MRN', size: 36 });
  const form = el('form', { class: 'search', onsubmit: (e) => { e.preventDefault(); findPatients(ctx, query.value.trim(), results); } },
    query, el('button', { type: 'submit', id: 'find' }, '查找 Find'));
  const chooser = await hospitalChooser(ctx, () => { if (ctx.args[0]) openPatient(ctx, ctx.args[0], results); });
  main.replaceChildren(el('section', { class: 'card' }, el('h2', {}, '医生工作台 Doctor'), chooser, form), results);
  if (ctx.args[0]) await openPatient(ctx, ctx.args[0], results);
}

async function findPatients(ctx, text, area) {
  if (!text) return;
  const asked = /^\d{17}[\dXx]$/.test(text) ? [`identifier=${NATIONAL_ID}|${text.toUpperCase()}`]
    : [`name=${encodeURIComponent(text)}`, `identifier=${encodeURIComponent(text)}`];
  const found = new Map();
  for (const q of asked) {
    for (const p of entries(await fhir(`Patient?${q}&_count=50`), 'Patient')) found.set(p.id, p);
  }
  if (!found.size) {
    area.replaceChildren(el('p', { class: 'muted' }, '未找到患者 No patient found.'));
    return;
  }
  const rows = [...found.values()].map((p) => el('tr', {},
    el('td', {}, el('a', { href: `#doctor/${encodeURIComponent(p.id)}` }, nameOf(p))),
    el('td', {}, p.gender || ''), el('td', {}, p.birthDate || ''),
    el('td', {}, (p.managingOrganization || {}).reference || ''), el('td', {}, identifiers(p))));
  area.replaceChildren(el('table', { class: 'list' }, el('tr', {}, ['姓名 Name', '性别 Gender', '出生 Born', '所属机构 Hospital', '标识 Identifiers'].map((h) => el('th', {}, h))), rows));
}

function nameOf(p) {
  return (p.name || []).map((n) => n.text || [n.family, ...(n.given || [])].join('')).find(Boolean) || p.id;
}

function identifiers(p) {
  return (p.identifier || []).map((i) => (i.system === NATIONAL_ID ? `身份证 ${i.value}` : i.value)).join(' · ');
}

function itemOf(report) {
  const coding = ((report.code || {}).coding || []).find((c) => c.system === ITEM) || ((report.code || {}).coding || [])[0] || {};
  return { code: coding.code || '', display: coding.display || (report.code || {}).text || coding.code || '' };
}

async function decide(ctx, report) {
  const requester = acting(ctx);
  if (!requester) return null;
  const answer = await fhir(`DiagnosticReport/${report.id}/$recognize`, { method: 'POST', body: { resourceType: 'Parameters', parameter: [
    { name: 'requester', valueReference: { reference: requester } }, { name: 'mode', valueCode: 'check' }] } });
  return values(answer);
}

// A peer platform's result is decided by $duplicate-check (this node asks the peers and reads their hospitals'
// standing): the DetectedIssue that implicates it, for a draft order of the item.
const remoteChecks = new Map();
async function remoteDecision(ctx, patient, report) {
  const item = itemOf(report);
  const key = `${patient.id}|${item.code}`;
  if (!remoteChecks.has(key)) {
    const order = { resourceType: 'ServiceRequest', status: 'draft', intent: 'order', subject: { reference: `Patient/${patient.id}` },
      code: { coding: [{ system: ITEM, code: item.code }] }, requester: { reference: acting(ctx) } };
    remoteChecks.set(key, fhir('ServiceRequest/$duplicate-check', { method: 'POST', body: { resourceType: 'Parameters',
      parameter: [{ name: 'request', resource: order }] } }));
  }
  const issue = entries(await remoteChecks.get(key), 'DetectedIssue')
    .find((d) => (d.implicated || []).some((i) => i.reference === report._url));
  if (!issue) return null;
  const recognizable = ((issue.code || {}).coding || []).some((c) => c.code === 'recognizable');
  const until = /有效期至(\d{4}-\d{2}-\d{2})/.exec(issue.detail || '');
  const patientText = (issue.extension || []).find((x) => x.url.endsWith('/hr-patient-text'));
  const where = /在(.+?)完成/.exec(issue.detail || ''); // the sentence names the peer's hospital (rules.describe)
  return { recognizable, explanation: issue.detail, validUntil: until ? until[1] : '', hospital: where ? where[1] : '',
    patientExplanation: patientText ? patientText.valueString : '' };
}

async function openPatient(ctx, id, area) {
  area.replaceChildren(el('p', { class: 'muted' }, '加载中… Loading…'));
  const patient = await fhir(`Patient/${encodeURIComponent(id)}`);
  const nid = (patient.identifier || []).find((i) => i.system === NATIONAL_ID);
  // By the national ID, the search also asks the peer platforms of other regions (_federated=true): their results
  // come back with their origin (extension hr-origin) and their own URL.
  const criteria = nid ? `person=${encodeURIComponent(`${NATIONAL_ID}|${nid.value}`)}&_federated=true` : `patient=Patient/${patient.id}`;
  const bundle = await fhir(`DiagnosticReport?${criteria}&_count=100`);
  const reports = (bundle.entry || []).filter((e) => e.resource && e.resource.resourceType === 'DiagnosticReport').map((e) => {
    const origin = (e.extension || []).find((x) => x.url.endsWith('/hr-origin'));
    const remote = origin && origin.valueReference && origin.valueReference.reference;
    return { ...e.resource, _origin: remote ? origin.valueReference.display : null, _url: e.fullUrl };
  });
  const notices = entries(bundle, 'OperationOutcome').flatMap((o) => o.issue || []).map((i) => i.diagnostics);
  reports.sort((a, b) => String(b.issued || b.effectiveDateTime || '').localeCompare(String(a.issued || a.effectiveDateTime || '')));
  const detail = el('div', { id: 'detail' });
  const context = (session() || {}).appContext ? JSON.parse(session().appContext) : {};
  const rows = await Promise.all(reports.map(async (report) => { // decided side by side, shown newest first
    const performerRef = ((report.performer || [])[0] || {}).reference || '';
    const [org, decision] = report._origin
      ? [null, await remoteDecision(ctx, patient, report).catch(() => null)]
      : await Promise.all([organization(performerRef), decide(ctx, report).catch(() => null)]);
    const item = itemOf(report);
    item.display = decision && decision.item ? decision.item.display : await display(ITEM, item.code) || item.display;
    const code = regionOf(org);
    const city = await display(REGION, code);
    const region = report._origin || (city !== code ? city : await display(REGION, code ? `${code.slice(0, 2)}0000` : '')); // GB/T 2260
    return resultRow(ctx, patient, report, item, org, region, decision, detail, context);
  }));
  const head = el('section', { class: 'card patient' },
    el('h2', { id: 'patient-name' }, `${nameOf(patient)} `, el('small', {}, `${GENDER[patient.gender] || ''} ${patient.birthDate || ''}`)),
    el('p', { class: 'muted' }, identifiers(patient)),
    el('p', { class: 'muted' }, `本人在各医院的检查检验结果 The person's results from every hospital (${reports.length})`),
    ...notices.map((n) => el('p', { class: 'notice' }, n)),
    consentButton(ctx, patient));
  const table = el('table', { class: 'list', id: 'timeline' },
    el('tr', {}, ['日期 Date', '项目 Item', '执行机构 Hospital', '地区 Region', '标识 Mark', '互认 Recognition', ''].map((h) => el('th', {}, h))), rows);
  area.replaceChildren(head, reports.length ? table : el('p', { class: 'muted' }, '暂无结果 No results yet.'), detail);
  if (context.result) {
    const row = document.getElementById(`row-${context.result.split('/').pop()}`);
    if (row) row.classList.add('highlight');
  }
}

function resultRow(ctx, patient, report, item, org, region, decision, detail, context) {
  const when = String(report.issued || report.effectiveDateTime || '').slice(0, 10);
  const marks = ((report.meta || {}).tag || []).filter((t) => t.system === MARK).map((t) => t.display).join(' ');
  let badge;
  if (!decision) badge = el('span', { class: 'badge muted' }, '—');
  else if (decision.recognizable) badge = el('span', { class: 'badge ok' }, `可互认 至 ${String(decision.validUntil || '').slice(0, 10)}`);
  else badge = el('span', { class: 'badge no', title: decision.explanation || '' }, '不可互认');
  const reasons = decision && !decision.recognizable
    ? el('div', { class: 'reasons' }, decision.explanation || '') : null;
  const actions = el('td', { class: 'actions' },
    report._origin ? null : el('button', { type: 'button', class: 'open', onclick: () => showReport(ctx, report, item, decision, detail) }, '查看 Open'),
    decision && decision.recognizable && !report._origin ? el('button', { type: 'button', class: 'accept', onclick: (e) => accept(ctx, report, e.target) }, '使用此结果 Use this result') : null,
    el('button', { type: 'button', class: 'reorder', onclick: () => reorder(ctx, patient, report, item, detail) }, '仍需复查 Re-order'));
  return el('tr', { id: `row-${report.id}`, class: context.order && report.id === context.result ? 'highlight' : '' },
    el('td', {}, when), el('td', {}, item.display),
    el('td', {}, org ? org.name : (decision && decision.hospital) || ((report.performer || [])[0] || {}).reference || ''),
    el('td', {}, region), el('td', {}, marks), el('td', {}, badge, reasons), actions);
}

async function accept(ctx, report, button) {
  try {
    await fhir(`DiagnosticReport/${report.id}/$recognize`, { method: 'POST', body: { resourceType: 'Parameters', parameter: [
      { name: 'requester', valueReference: { reference: acting(ctx) } }, { name: 'mode', valueCode: 'accept' }] } });
    button.disabled = true;
    button.textContent = '已使用 Used';
    toast('已使用此结果，记为避免重复检查 Recorded: the result is used, a repeat avoided.');
  } catch (error) {
    toast(`未能记录 Not recorded: ${error.message}`, 'error');
  }
}

async function reorder(ctx, patient, report, item, detail) {
  const expansion = await fhir(`ValueSet/$expand?url=${encodeURIComponent(REASONS)}`);
  const reasons = (expansion.expansion.contains || []);
  const select = el('select', { id: 'reason' }, reasons.map((r) => el('option', { value: r.code }, r.display)));
  const note = el('input', { id: 'reason-text', placeholder: '说明（选“其他”时必填） Explanation', size: 40 });
  const submit = async (e) => {
    e.preventDefault();
    const coding = reasons.find((r) => r.code === select.value);
    const order = {
      resourceType: 'ServiceRequest', status: 'active', intent: 'order', authoredOn: new Date().toISOString(),
      code: { coding: [{ system: ITEM, code: item.code, display: item.display }] },
      subject: { reference: `Patient/${patient.id}` }, requester: { reference: acting(ctx) },
      extension: [{ url: OVERRIDE, valueCodeableConcept: { coding: [{ system: EXCEPTION, code: coding.code, display: coding.display }], text: note.value || undefined } }],
    };
    try {
      await fhir('ServiceRequest', { method: 'POST', body: order });
      detail.replaceChildren(el('p', { class: 'ok', id: 'reordered' }, `已复查申请，理由：${coding.display} Re-ordered with the reason recorded.`));
      toast(`已记录复查理由：${coding.display}`);
    } catch (error) {
      toast(`未能保存 Not stored: ${error.message}`, 'error');
    }
  };
  detail.replaceChildren(el('section', { class: 'card' }, el('h3', {}, `仍需复查 Re-order: ${item.display}`),
    el('p', { class: 'muted' }, '请选择临床理由，系统将记录。 Choose the clinical reason; it is recorded.'),
    el('form', { onsubmit: submit, id: 'reorder-form' }, select, note, el('button', { type: 'submit', id: 'reorder-submit' }, '确认复查 Re-order'))));
}

async function showReport(ctx, report, item, decision, detail) {
  const bundle = await fhir(`DiagnosticReport?_id=${report.id}&_include=DiagnosticReport:result`);
  const observations = entries(bundle, 'Observation');
  const rows = observations.map((o) => {
    const q = o.valueQuantity;
    const range = (o.referenceRange || [])[0];
    const flag = ((o.interpretation || [])[0] || {}).coding ? o.interpretation[0].coding[0].code : '';
    return el('tr', {}, el('td', {}, ((o.code || {}).coding || [{}])[0].display || (o.code || {}).text || ''),
      el('td', {}, q ? `${q.value} ${q.unit || q.code || ''}` : (o.valueString || '')),
      el('td', {}, range ? `${(range.low || {}).value ?? ''}–${(range.high || {}).value ?? ''} ${(range.low || range.high || {}).unit || ''}` : ''),
      el('td', { class: flag && flag !== 'N' ? 'flag' : '' }, flag));
  });
  const study = (report.imagingStudy || [])[0];
  detail.replaceChildren(el('section', { class: 'card', id: 'report' },
    el('h3', {}, `报告 Report: ${item.display}`),
    el('p', {}, `状态 Status: ${report.status} · 日期 Date: ${String(report.issued || '').slice(0, 16)}`),
    report.conclusion ? el('p', { class: 'conclusion' }, `结论 Conclusion: ${report.conclusion}`) : null,
    rows.length ? el('table', { class: 'list' }, el('tr', {}, ['项目 Test', '结果 Value', '参考范围 Range', '提示 Flag'].map((h) => el('th', {}, h))), rows) : null,
    decision ? el('p', { class: 'explain' }, decision.explanation || '') : null,
    decision ? el('p', { class: 'explain patient-text' }, `给患者的说明 For the patient: ${decision.patientExplanation || ''}`) : null,
    study ? el('button', { type: 'button', id: 'view-images', onclick: () => openStudy(study, detail) }, '查看影像 View images') : null));
}

function consentButton(ctx, patient) {
  if (!ctx.config) return null;
  const record = async () => {
    const s = session() || {};
    const end = new Date(Date.now() + 30 * 86400000).toISOString().slice(0, 10);
    const consent = {
      resourceType: 'Consent', status: 'active',
      scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: `Patient/${patient.id}` }, dateTime: new Date().toISOString().slice(0, 10),
      organization: [{ reference: s.organization }],
      policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
      provision: { type: 'permit', period: { start: new Date().toISOString().slice(0, 10), end },
        actor: [{ role: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'IRCP' }] },
          reference: { reference: s.organization } }] },
    };
    try {
      await fhir('Consent', { method: 'POST', body: consent });
      toast('已记录患者授权 The patient\'s consent is recorded.');
    } catch (error) {
      toast(`未能记录授权 Not recorded: ${error.message}`, 'error');
    }
  };
  return el('button', { type: 'button', id: 'record-consent', onclick: record }, '记录患者授权调阅外院结果 Record the patient\'s consent');
}
