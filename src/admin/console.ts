// Serves the admin console, the single-page app that `npm install` builds into
// console/dist, at `/`. Paths that name no file get index.html, so the console's own
// addresses (/bundles/…, /activity) work on reload; /api/ paths never do.

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

export const DEFAULT_CONSOLE_DIR = path.resolve(import.meta.dirname, '..', '..', 'console', 'dist');

// The build loads one script and one stylesheet from /assets and nothing inline
// (vite.config.ts turns off data: URL inlining), so 'self' is all it needs.
export const CONSOLE_CSP = "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'self'";

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

// Vite names every file under assets/ by its content hash, so a changed file gets a new
// name and the old one may be cached for good. Everything else is revalidated.
const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';

const MISSING_BUILD_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agent Proxy console not built</title></head>
<body>
<h1>The console has not been built</h1>
<p>The admin API under <code>/api/v1</code> works, but the web console's files are missing from
<code>console/dist</code>. <code>npm install</code> builds them; to build them again, run
<code>npm run build:console</code> in the Agent Proxy directory and reload this page.</p>
</body></html>
`;

export interface ConsoleOptions {
  /** The built console. Defaults to console/dist of this checkout. */
  dir?: string;
}

function setSecurityHeaders(reply: FastifyReply): void {
  reply.header('content-security-policy', CONSOLE_CSP);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Maps a URL path to a file under `root`, or returns null for a path that could escape it. */
function fileFor(root: string, urlPath: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.split('/').some((segment) => segment.startsWith('.'))) return null;
  const file = path.resolve(root, `.${decoded}`);
  return file.startsWith(root + path.sep) ? file : null;
}

/** Registers GET (and HEAD) `/*` for the console. Call it after the API routes, which take precedence as static paths. */
export function registerConsole(app: FastifyInstance, options: ConsoleOptions = {}): void {
  const root = path.resolve(options.dir ?? DEFAULT_CONSOLE_DIR);
  const indexFile = path.join(root, 'index.html');

  app.get('/*', async (request, reply) => {
    const urlPath = request.url.split('?')[0]!;
    if (urlPath === '/api' || urlPath.startsWith('/api/')) {
      return reply.callNotFound();
    }

    const file = urlPath === '/' ? indexFile : fileFor(root, urlPath);
    if (file !== null && (await isFile(file))) {
      setSecurityHeaders(reply);
      reply.header('cache-control', urlPath.startsWith('/assets/') ? IMMUTABLE : REVALIDATE);
      reply.type(CONTENT_TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream');
      return reply.send(await readFile(file));
    }

    // A missing file with an extension is a stale or mistyped asset: responding with
    // index.html would hand the browser HTML where it expects a script or style.
    if (path.posix.extname(urlPath) !== '') {
      return reply.code(404).type('text/plain; charset=utf-8').header('cache-control', REVALIDATE).send(`Not found: ${urlPath}\n`);
    }

    setSecurityHeaders(reply);
    reply.header('cache-control', REVALIDATE);
    if (!(await isFile(indexFile))) {
      return reply.code(503).type('text/html; charset=utf-8').send(MISSING_BUILD_PAGE);
    }
    return reply.type('text/html; charset=utf-8').send(await readFile(indexFile));
  });
}
