// The desk's shell, kept so that the installed app opens at once and without the network.
// Network first (the hub marks the HTML no-cache: a new build shows at the next load), the cache
// when the hub is out of reach. Never the API (/desk/api/: tokens, the call log, voicemails),
// never a request carrying the credential, never a partial (Range) answer.
const CACHE = 'intercom-desk-shell-v1';
const SHELL = ['./', 'app.js', 'desk.css', 'manifest.webmanifest', 'icons/icon-192.png', 'icons/icon-512.png', 'ring.wav'];
const SCOPE = new URL('./', self.location).pathname; // /desk/

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

function isShell(request) {
  const url = new URL(request.url);
  return (
    request.method === 'GET' &&
    url.origin === self.location.origin &&
    url.pathname.startsWith(SCOPE) &&
    !url.pathname.startsWith(`${SCOPE}api/`) &&
    !request.headers.has('Authorization') &&
    !request.headers.has('Range')
  );
}

// Every page of the desk (/desk/, /desk/pair) is the same HTML: keep it once; an asset once
// whatever its ?v= (a new build replaces the old entry rather than adding one).
function keyOf(request) {
  if (request.mode === 'navigate') return SCOPE;
  const url = new URL(request.url);
  url.search = '';
  return url.href;
}

async function networkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.status === 200) await cache.put(keyOf(request), response.clone());
    return response;
  } catch (offline) {
    const kept = await cache.match(keyOf(request), { ignoreSearch: true });
    if (kept) return kept;
    throw offline;
  }
}

self.addEventListener('fetch', (event) => {
  if (isShell(event.request)) event.respondWith(networkFirst(event.request));
});
