// The resident portal's second, independent OpenID provider in the tests: the certified
// `oidc-provider` package (npm), so the connector's client is not tuned to pyop. Started by
// tests/portal_fixtures.py with one JSON argument: {port, client_id, client_secret,
// redirect_uri, users: {id: password}}. Prints {"event": "ready", ...} when it listens.
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.argv[2]);
const issuer = `http://127.0.0.1:${config.port}`;

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!doctype html><html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>${title}</title></head>
<body><main><h1>${title}</h1>${body}</main></body></html>`;
const loginForm = (uid, error) => page('加古川市 ID（テスト用 oidc-provider）',
  `${error ? `<p role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<p><label for="u">利用者ID</label><br><input id="u" name="username" autocomplete="username" required></p>
<p><label for="p">パスワード</label><br><input id="p" name="password" type="password" autocomplete="current-password" required></p>
<p><button type="submit">ログイン</button></p></form>`);

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id, client_secret: config.client_secret,
    redirect_uris: [config.redirect_uri], grant_types: ['authorization_code'],
    response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  jwks: { keys: [{ ...crypto.generateKeyPairSync('rsa', { modulusLength: 2048 })
    .privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' }] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    if (!Object.hasOwn(config.users, id)) return undefined;
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  // a first-party client: the resident's sign-in is their consent to it
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid');
    await grant.save();
    return grant;
  },
});

const readForm = (req) => new Promise((resolve, reject) => {
  let body = '';
  req.on('data', (chunk) => { body += chunk; if (body.length > 10000) req.destroy(); });
  req.on('end', () => resolve(new URLSearchParams(body)));
  req.on('error', reject);
});

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const match = /^\/interaction\/([\w-]+)(\/login)?$/.exec(req.url.split('?')[0]);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(loginForm(details.uid));
    }
    const form = await readForm(req);
    const user = form.get('username') || '';
    const expected = Object.hasOwn(config.users, user) ? config.users[user] : null;
    const given = Buffer.from(form.get('password') || '');
    if (expected === null || given.length !== Buffer.byteLength(expected)
        || !crypto.timingSafeEqual(given, Buffer.from(expected))) {
      res.writeHead(401, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(loginForm(details.uid, '利用者IDまたはパスワードが違います'));
    }
    return await provider.interactionFinished(req, res, { login: { accountId: user } },
                                              { mergeWithLastSubmission: false });
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' });
    return res.end(`interaction failed: ${err.message}`);
  }
});

server.listen(config.port, '127.0.0.1', () => {
  console.log(JSON.stringify({ event: 'ready', issuer, port: config.port }));
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
