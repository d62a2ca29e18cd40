// Server-rendered pages of the stand-in issuers: sign-in, consent, errors. Plain HTML forms that
// work without JavaScript; every interpolated value goes through `escapeHtml`. Styles are inline
// under a per-response CSP nonce; no script, no third-party resource.
import { randomBytes } from 'node:crypto';

export function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const CSS = `
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:26rem;margin:3rem auto;padding:1.5rem 2rem;background:#fff;border:1px solid #d9dce3;border-radius:8px}
h1{font-size:1.3rem;margin:0 0 1rem}
label{display:block;font-weight:600;margin-top:.8rem}
input{box-sizing:border-box;width:100%;padding:.5rem;margin-top:.25rem;font:inherit;border:1px solid #9aa1b0;border-radius:4px}
button{font:inherit;font-weight:600;padding:.5rem 1.2rem;margin:1.2rem .5rem 0 0;border-radius:4px;border:1px solid #1f56c2;background:#2463d9;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1f56c2}
.error{color:#a1161d;background:#fdecee;border:1px solid #f3b9bf;padding:.5rem .75rem;border-radius:4px}
.hint,.who{color:#525a6b;font-size:.9rem}
.stand-in{font-size:.8rem;color:#6b7283;margin-top:1.5rem;border-top:1px solid #e4e6eb;padding-top:.75rem}
ul{padding-left:1.2rem}
`;

/** Headers every page sends, and the page body. */
export function page({ title, heading, body, footer }) {
  const nonce = randomBytes(16).toString('base64');
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style nonce="${nonce}">${CSS}</style>
</head>
<body>
<main>
<h1>${escapeHtml(heading)}</h1>
${body}
<p class="stand-in">${escapeHtml(footer)}</p>
</main>
</body>
</html>
`;
  return {
    html,
    headers: {
      'Content-Type': 'text/html; charset=utf-8',
      'Cache-Control': 'no-store',
      Pragma: 'no-cache',
      // No form-action: after the consent form, the redirect chain ends at the client's
      // redirect URI on another origin, and browsers apply form-action to the whole chain.
      'Content-Security-Policy': `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'`,
      'X-Content-Type-Options': 'nosniff',
      'X-Frame-Options': 'DENY',
      'Referrer-Policy': 'no-referrer',
    },
  };
}

const FOOTER = 'Local stand-in for the demo: not a real identity provider.';

export function loginPage({ issuerTitle, action, clientName, username = '', error, demoHint }) {
  const errorBlock = error ? `<p class="error" role="alert">${escapeHtml(error)}</p>\n` : '';
  const body = `${errorBlock}<p class="who">Sign in to continue to ${escapeHtml(clientName)}.</p>
<form method="post" action="${escapeHtml(action)}">
<label for="username">Username</label>
<input id="username" name="login" autocomplete="username" autocapitalize="none" spellcheck="false" required value="${escapeHtml(username)}"${username ? '' : ' autofocus'}>
<label for="password">Password</label>
<input id="password" type="password" name="password" autocomplete="current-password" required${username ? ' autofocus' : ''}>
<button type="submit">Sign in</button>
</form>
<p class="hint">${escapeHtml(demoHint)}</p>`;
  return page({ title: `Sign in - ${issuerTitle}`, heading: issuerTitle, body, footer: FOOTER });
}

export function consentPage({ issuerTitle, action, clientName, scopes, signedInAs }) {
  const items = scopes.map((s) => `<li>${escapeHtml(s.description)} <span class="hint">(${escapeHtml(s.scope)})</span></li>`).join('\n');
  const body = `<p><strong>${escapeHtml(clientName)}</strong> wants to:</p>
<ul>
${items}
</ul>
<p class="who">Signed in as ${escapeHtml(signedInAs)}.</p>
<form method="post" action="${escapeHtml(action)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>`;
  return page({ title: `Allow access? - ${issuerTitle}`, heading: issuerTitle, body, footer: FOOTER });
}

export function errorPage({ issuerTitle, message }) {
  return page({ title: `Error - ${issuerTitle}`, heading: issuerTitle, body: `<p class="error" role="alert">${escapeHtml(message)}</p>`, footer: FOOTER });
}
