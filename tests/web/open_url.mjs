// Opens URLs in one Chromium (browser.mjs) and prints what happened to each as a JSON line:
// {"status": 200, "body": "..."} or {"error": "net::ERR_CERT_AUTHORITY_INVALID at ..."}.
//
//   node open_url.mjs --url https://127.0.0.1:PORT/healthz [--url ...] [--ca ca.pem [--ca ...]]

import { parseArgs } from 'node:util';
import { launch } from './browser.mjs';

const { values } = parseArgs({
  options: { url: { type: 'string', multiple: true }, ca: { type: 'string', multiple: true, default: [] } },
});
const chromium = await launch({ caFile: values.ca });
try {
  const page = await chromium.newPage();
  for (const url of values.url) {
    try {
      const response = await page.goto(url, { timeout: 20000 });
      console.log(JSON.stringify({ status: response.status(), body: await response.text() }));
    } catch (error) {
      console.log(JSON.stringify({ error: error.message.split('\n')[0] }));
    }
  }
} finally {
  await chromium.close();
}
