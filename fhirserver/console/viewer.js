// Images of an ImagingStudy through DICOMweb: series thumbnails and a frame viewer (WADO-RS rendered frames with
// window=center,width), scrolled with the slider, the mouse wheel or the arrow keys; the originals are downloaded
// as stored (WADO-RS instance retrieve, lossless).
import { blob, download, el, fhir, root, toast } from './api.js';

const PRESETS = [['脑窗 Brain', 40, 80], ['软组织 Soft tissue', 40, 400], ['肺窗 Lung', -600, 1500], ['骨窗 Bone', 400, 1800]];
const cache = new Map();

function studyUid(study) {
  const id = (study.identifier || []).find((i) => i.system === 'urn:dicom:uid');
  return id ? id.value.replace(/^urn:oid:/, '') : study.id;
}

async function rendered(study, series, sop, center, width) {
  const key = `${sop}|${center}|${width}`;
  if (!cache.has(key)) {
    const window = center === null ? '' : `?window=${center},${width},linear`;
    const url = `${root}/dicomweb/studies/${study}/series/${series}/instances/${sop}/rendered${window}`;
    cache.set(key, blob(url, 'image/png').then((r) => URL.createObjectURL(r.blob)));
  }
  return cache.get(key);
}

export async function openStudy(reference, container) {
  const study = reference.reference ? await fhir(reference.reference)
    : (await fhir(`ImagingStudy?identifier=${encodeURIComponent(`${reference.identifier.system}|${reference.identifier.value}`)}`)).entry[0].resource;
  const uid = studyUid(study);
  const strip = el('div', { class: 'thumbs', id: 'series' });
  const stage = el('div', { id: 'stage' });
  container.replaceChildren(el('section', { class: 'card', id: 'viewer' },
    el('h3', {}, `影像 Images: ${study.description || ''} (${(study.series || []).length} 序列 series)`), strip, stage));
  for (const series of study.series || []) {
    const first = (series.instance || [])[0];
    const img = el('img', { alt: series.description || series.uid, class: 'thumb' });
    const button = el('button', { type: 'button', class: 'series', onclick: () => showSeries(uid, series, stage) },
      img, el('span', {}, `${series.modality ? series.modality.code : ''} ${series.description || ''} · ${(series.instance || []).length} 幅`));
    strip.append(button);
    if (first) rendered(uid, series.uid, first.uid, null, null).then((src) => { img.src = src; }).catch(() => {});
  }
  if ((study.series || []).length) await showSeries(uid, study.series[0], stage);
}

async function showSeries(uid, series, stage) {
  const instances = [...(series.instance || [])].sort((a, b) => (a.number || 0) - (b.number || 0));
  let index = 0;
  let [center, width] = [40, 80];
  const frame = el('img', { id: 'frame', alt: '影像 frame', tabindex: 0 });
  const label = el('span', { id: 'slice-label' });
  const slider = el('input', { type: 'range', id: 'slice', min: 1, max: instances.length, value: 1 });
  const centerInput = el('input', { type: 'number', id: 'center', value: center, size: 6 });
  const widthInput = el('input', { type: 'number', id: 'width', value: width, min: 1, size: 6 });
  const show = async () => {
    const sop = instances[index].uid;
    label.textContent = `第 ${index + 1} / ${instances.length} 层 Slice`;
    slider.value = index + 1;
    try {
      frame.src = await rendered(uid, series.uid, sop, center, width);
      frame.dataset.instance = String(index + 1);
      frame.dataset.window = `${center},${width}`;
    } catch (error) {
      toast(`影像未能显示 The frame did not load: ${error.message}`, 'error');
    }
  };
  const go = (to) => { index = Math.max(0, Math.min(instances.length - 1, to)); show(); };
  slider.addEventListener('input', () => go(Number(slider.value) - 1));
  frame.addEventListener('wheel', (e) => { e.preventDefault(); go(index + (e.deltaY > 0 ? 1 : -1)); }, { passive: false });
  frame.addEventListener('keydown', (e) => { if (e.key === 'ArrowDown' || e.key === 'ArrowRight') go(index + 1); if (e.key === 'ArrowUp' || e.key === 'ArrowLeft') go(index - 1); });
  const apply = () => { center = Number(centerInput.value); width = Math.max(1, Number(widthInput.value)); show(); };
  centerInput.addEventListener('change', apply);
  widthInput.addEventListener('change', apply);
  const presets = PRESETS.map(([name, c, w]) => el('button', { type: 'button', class: 'preset', onclick: () => { centerInput.value = c; widthInput.value = w; apply(); } }, name));
  const original = el('button', { type: 'button', id: 'download', onclick: () => downloadOriginal(uid, series.uid, instances[index].uid) }, '下载原始影像 Download original (DICOM)');
  stage.replaceChildren(el('div', { class: 'viewer' }, frame,
    el('div', { class: 'controls' }, label, slider,
      el('label', {}, '窗位 Center ', centerInput), el('label', {}, '窗宽 Width ', widthInput), ...presets, original)));
  await show();
}

// WADO-RS answers multipart/related: the DICOM object is the first part's body, byte for byte as stored.
async function downloadOriginal(study, series, sop) {
  const url = `${root}/dicomweb/studies/${study}/series/${series}/instances/${sop}`;
  const answer = await blob(url, 'multipart/related; type="application/dicom"');
  const boundary = /boundary="?([^";]+)"?/.exec(answer.type);
  const bytes = new Uint8Array(await answer.blob.arrayBuffer());
  if (!boundary) {
    download(`${sop}.dcm`, new Blob([bytes], { type: 'application/dicom' }));
    return;
  }
  const text = new TextDecoder('latin1').decode(bytes);
  const start = text.indexOf('\r\n\r\n') + 4;
  const end = text.indexOf(`\r\n--${boundary[1]}`, start);
  download(`${sop}.dcm`, new Blob([bytes.slice(start, end)], { type: 'application/dicom' }));
}
