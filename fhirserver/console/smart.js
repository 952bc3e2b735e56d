// SMART App Launch 2.0 for the console: discovery, authorization code with PKCE (S256), EHR launch (iss + launch)
// and standalone launch. The token answer (with its launch context: patient, appContext) lives in sessionStorage.
import { base, root, session, setSession } from './api.js';

const CLIENT_ID = 'fhirserver-console';

export async function discover() {
  const answer = await fetch(`${base}/.well-known/smart-configuration`, { headers: { Accept: 'application/json' } });
  return answer.ok ? answer.json() : null; // 404: authentication is off, the API takes calls without a token
}

function randomText(bytes) {
  const data = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...data)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function challengeOf(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return btoa(String.fromCharCode(...new Uint8Array(digest))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

export async function login(config, launch) {
  const verifier = randomText(48);
  const state = randomText(16);
  const redirect = `${root}/console/`;
  sessionStorage.setItem('hr.pkce', JSON.stringify({ verifier, state, redirect }));
  const scope = launch ? 'launch openid fhirUser user/*.cruds' : 'launch/patient openid fhirUser user/*.cruds';
  const query = new URLSearchParams({
    response_type: 'code', client_id: CLIENT_ID, redirect_uri: redirect, scope, state, aud: base,
    code_challenge: await challengeOf(verifier), code_challenge_method: 'S256',
  });
  if (launch) query.set('launch', launch);
  location.assign(`${config.authorization_endpoint}?${query}`);
}

export async function complete(config, url) {
  const pkce = JSON.parse(sessionStorage.getItem('hr.pkce') || 'null');
  sessionStorage.removeItem('hr.pkce');
  if (!pkce || url.searchParams.get('state') !== pkce.state) throw new Error('登录状态不符 The login state does not match; log in again.');
  const form = new URLSearchParams({
    grant_type: 'authorization_code', code: url.searchParams.get('code'), redirect_uri: pkce.redirect,
    client_id: CLIENT_ID, code_verifier: pkce.verifier,
  });
  const answer = await fetch(config.token_endpoint, {
    method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' }, body: form,
  });
  const token = await answer.json();
  if (!answer.ok) throw new Error(token.error_description || token.error || `HTTP ${answer.status}`);
  setSession(token);
  history.replaceState(null, '', `${root}/console/${contextHash(token)}`);
}

// The place the launch context opens: the doctor's view of the patient (and the order) an EHR launched us on.
export function contextHash(token) {
  if (token.role === 'patient') return '#patient';
  if (token.role === 'admin' || token.role === 'platform') return '#admin';
  return token.patient ? `#doctor/${encodeURIComponent(token.patient)}` : '#doctor';
}

// Without authentication (FHIRSERVER_AUTH=off) a launch is opened directly: the launch parameter may carry the
// context itself (base64url JSON {patient, appContext}), as this server's development launches do.
export function openLaunch(launch) {
  try {
    const context = JSON.parse(atob(launch.replace(/-/g, '+').replace(/_/g, '/')));
    const current = session() || {};
    setSession({ ...current, patient: context.patient, appContext: context.appContext });
    return contextHash({ patient: context.patient });
  } catch {
    return '#doctor';
  }
}

export function logout() {
  setSession(null);
  location.assign(`${root}/console/`);
}
