// Opens one URL in Chromium (browser.mjs) and prints what happened as one JSON line:
// {"status": 200, "body": "..."} or {"error": "net::ERR_CERT_AUTHORITY_INVALID at ..."}.
//
//   node open_url.mjs --url https://127.0.0.1:PORT/healthz [--ca ca.pem]

import { parseArgs } from 'node:util';
import { launch } from './browser.mjs';

const { values } = parseArgs({ options: { url: { type: 'string' }, ca: { type: 'string' } } });
const chromium = await launch({ caFile: values.ca || null });
try {
  const page = await chromium.newPage();
  const response = await page.goto(values.url, { timeout: 20000 });
  console.log(JSON.stringify({ status: response.status(), body: await response.text() }));
} catch (error) {
  console.log(JSON.stringify({ error: error.message.split('\n')[0] }));
} finally {
  await chromium.close();
}
