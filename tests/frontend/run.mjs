// Frontend teams' tools against needtoknow, as `scripts/test` runs them:
//
//   node tests/frontend/run.mjs --bin PATH/TO/needtoknow [--out DIR]
//
// Starts `needtoknow serve --demo` on a free port with a fresh data directory, then:
//   1. the graphql-http server audit (GraphQL over HTTP conformance): every audit must be ok;
//   2. the standard introspection query of graphql-js: it must succeed and describe exactly
//      schema.graphql;
//   3. the operations in examples/operations: valid against schema.graphql; if one is not,
//      graphql-inspector names the breaking changes since the last committed schema.graphql;
//   4. graphql-codegen: TypeScript types for those operations;
//   5. relay-compiler: the same operations, compiled the way a Relay app compiles them, and
//      a @refetchable fragment (Relay refetches through the schema's node(id:));
//   6. GraphiQL in headless Chromium with every request outside the service blocked: the
//      page loads, runs a query with a demo token, and a screenshot lands in --out.
// Every step runs; the exit status is 1 if any failed.

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { serverAudits } from 'graphql-http';
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  parse,
  printSchema,
  validate,
} from 'graphql';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const bin = option('--bin');
const out = path.resolve(option('--out', path.join(os.tmpdir(), 'needtoknow-frontend')));
if (!bin) {
  console.error('usage: node run.mjs --bin PATH/TO/needtoknow [--out DIR]');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

const failures = [];
async function step(name, fn) {
  const started = Date.now();
  try {
    const note = await fn();
    console.log(`ok   ${name}${note ? ` — ${note}` : ''} (${Date.now() - started} ms)`);
  } catch (error) {
    failures.push(name);
    console.log(`FAIL ${name}\n${String(error?.stack ?? error).replace(/^/gm, '     ')}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

// --- the service ----------------------------------------------------------------------
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'needtoknow-frontend-data-'));
const port = await freePort();
const origin = `http://127.0.0.1:${port}`;
const url = `${origin}/graphql`;
const serviceLog = path.join(out, 'service.log');
const service = spawn(bin, ['serve', '--demo'], {
  cwd: repo,
  env: {
    ...process.env,
    NEEDTOKNOW_DATA_DIR: dataDir,
    NEEDTOKNOW_LISTEN: `127.0.0.1:${port}`,
    NEEDTOKNOW_LOG: 'warn',
    DATABASE_URL: '',
    REDIS_URL: '',
  },
  stdio: ['ignore', fs.openSync(serviceLog, 'w'), fs.openSync(serviceLog, 'a')],
});
const stopService = () => {
  if (service.exitCode === null) service.kill('SIGTERM');
};
process.on('exit', () => {
  stopService();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

let ready = false;
for (let i = 0; i < 240 && !ready && service.exitCode === null; i++) {
  ready = await fetch(`${origin}/healthz`).then((r) => r.ok, () => false);
  if (!ready) await new Promise((r) => setTimeout(r, 250));
}
const tokensFile = path.join(dataDir, 'demo-tokens.json');
if (!ready || !fs.existsSync(tokensFile)) {
  console.error(`the service did not start; its log:\n${fs.readFileSync(serviceLog, 'utf8')}`);
  process.exit(1);
}
const tokens = JSON.parse(fs.readFileSync(tokensFile, 'utf8'));
const auth = { authorization: `Bearer ${tokens.frontline}` };

async function post(body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth, ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

const schemaText = fs.readFileSync(path.join(repo, 'schema.graphql'), 'utf8');
const schema = buildSchema(schemaText);
const operationsDir = path.join(repo, 'examples', 'operations');
const operations = fs
  .readdirSync(operationsDir)
  .filter((f) => f.endsWith('.graphql'))
  .sort()
  .map((file) => ({ file, text: fs.readFileSync(path.join(operationsDir, file), 'utf8') }));

// --- 1. GraphQL over HTTP ---------------------------------------------------------------
await step('graphql-http server audit', async () => {
  const fetchFn = (input, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('authorization', auth.authorization);
    return fetch(input, { ...init, headers });
  };
  const results = [];
  for (const audit of serverAudits({ url, fetchFn })) results.push(await audit.fn());
  const bad = results.filter((r) => r.status !== 'ok');
  if (bad.length) {
    throw new Error(
      bad.map((r) => `${r.status} ${r.id} ${r.name}: ${r.reason}`).join('\n'),
    );
  }
  return `${results.length} audits, all ok`;
});

// --- 2. introspection -------------------------------------------------------------------
await step('standard introspection query (graphql-js, every option)', async () => {
  const query = getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
  });
  const { status, body } = await post({ query });
  if (status !== 200 || body.errors) {
    throw new Error(`HTTP ${status}: ${JSON.stringify(body.errors)}`);
  }
  // async-graphql answers `__schema { description }` with the generic description of the
  // `__Schema` type itself, not the schema's own (which this schema does not have): leave
  // it out of the comparison.
  body.data.__schema.description = null;
  const served = printSchema(lexicographicSortSchema(buildClientSchema(body.data)));
  const committed = printSchema(lexicographicSortSchema(schema));
  if (served !== committed) {
    const a = served.split('\n');
    const b = committed.split('\n');
    const at = a.findIndex((line, i) => line !== b[i]);
    throw new Error(
      `the introspected schema differs from schema.graphql at line ${at + 1} (sorted):\n` +
        `  served:    ${a[at]}\n  committed: ${b[at]}`,
    );
  }
  return 'the served schema is schema.graphql';
});

// --- 3. the example operations ----------------------------------------------------------
await step('examples/operations validate against schema.graphql', async () => {
  const problems = [];
  for (const { file, text } of operations) {
    for (const error of validate(schema, parse(text))) problems.push(`${file}: ${error.message}`);
  }
  let committed = null;
  try {
    committed = execFileSync('git', ['show', 'HEAD:schema.graphql'], {
      cwd: repo,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    // Not a git checkout: nothing to compare with.
  }
  let breaking = [];
  if (committed !== null) {
    const { diff } = await import('@graphql-inspector/core');
    const changes = await diff(buildSchema(committed), schema);
    breaking = changes.filter((c) => c.criticality.level === 'BREAKING');
    for (const change of breaking) console.log(`     breaking since HEAD: ${change.message}`);
  }
  if (problems.length) {
    const named = breaking.length
      ? `\nbreaking changes since the committed schema.graphql:\n${breaking.map((c) => `  ${c.message}`).join('\n')}`
      : '';
    throw new Error(problems.join('\n') + named);
  }
  return `${operations.length} operations; ${breaking.length} breaking change(s) since HEAD`;
});

// --- 4. graphql-codegen -----------------------------------------------------------------
await step('graphql-codegen (typescript, typescript-operations)', async () => {
  const { generate } = await import('@graphql-codegen/cli');
  const target = path.join(out, 'operations.ts');
  await generate(
    {
      schema: path.join(repo, 'schema.graphql'),
      documents: path.join(operationsDir, '*.graphql'),
      generates: {
        [target]: {
          plugins: ['typescript', 'typescript-operations'],
          config: { dedupeOperationSuffix: true },
        },
      },
      silent: true,
      errorsOnly: true,
    },
    true,
  );
  const generated = fs.readFileSync(target, 'utf8');
  for (const { text } of operations) {
    const name = /(?:query|mutation)\s+(\w+)/.exec(text)[1];
    if (!generated.includes(`export type ${name} =`)) throw new Error(`no type for ${name}`);
  }
  return `types in ${target}`;
});

// --- 5. relay-compiler ------------------------------------------------------------------
await step('relay-compiler', async () => {
  const project = fs.mkdtempSync(path.join(os.tmpdir(), 'needtoknow-relay-'));
  try {
    fs.mkdirSync(path.join(project, 'src'));
    for (const { text } of operations) {
      // Relay wants each operation in a module whose name prefixes the operation's.
      const name = /(?:query|mutation)\s+(\w+)/.exec(text)[1];
      const module = name.replace(/(Query|Mutation)$/, '');
      fs.writeFileSync(
        path.join(project, 'src', `${module}.ts`),
        `import { graphql } from 'react-relay';\nexport const ${name} = graphql\`\n${text}\`;\n`,
      );
    }
    // A refetchable fragment: Relay generates its refetch query through `node(id:)`, which
    // needs the schema's Node interface.
    fs.writeFileSync(
      path.join(project, 'src', 'CustomerCard.ts'),
      "import { graphql } from 'react-relay';\nexport const fragment = graphql`\n" +
        'fragment CustomerCard_customer on Customer @refetchable(queryName: "CustomerCardRefetchQuery") {\n' +
        '  fullName { value access }\n  email { value access reveal }\n}\n`;\n',
    );
    fs.writeFileSync(
      path.join(project, 'relay.config.json'),
      JSON.stringify({
        src: './src',
        schema: path.join(repo, 'schema.graphql'),
        language: 'typescript',
        eagerEsModules: true,
      }),
    );
    const compiler = path.join(here, 'node_modules', '.bin', 'relay-compiler');
    try {
      execFileSync(compiler, [], {
        cwd: project,
        encoding: 'utf8',
        stdio: 'pipe',
        env: { ...process.env, NO_COLOR: '1' },
      });
    } catch (error) {
      throw new Error(`${error.stdout ?? ''}${error.stderr ?? ''}`);
    }
    const refetch = path.join(project, 'src', '__generated__', 'CustomerCardRefetchQuery.graphql.ts');
    if (!fs.readFileSync(refetch, 'utf8').includes('node(id: $id)')) {
      throw new Error('the refetchable fragment did not compile to a node(id:) query');
    }
    return `${operations.length} operations and a @refetchable fragment (through node(id:))`;
  } finally {
    fs.rmSync(project, { recursive: true, force: true });
  }
});

// --- 6. GraphiQL in a real browser, offline ---------------------------------------------
await step('GraphiQL in headless Chromium, nothing fetched from outside', async () => {
  const { default: puppeteer } = await import('puppeteer-core');
  const executablePath = ['chromium', 'chromium-browser', 'google-chrome']
    .map((name) => {
      try {
        return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      } catch {
        return '';
      }
    })
    .find(Boolean);
  if (!executablePath) throw new Error('no Chromium found (scripts/test installs `chromium`)');
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 800 });
    const outside = [];
    const problems = [];
    await page.setRequestInterception(true);
    page.on('request', (request) => {
      const target = request.url();
      if (target.startsWith(`${origin}/`) || target.startsWith('data:') || target.startsWith('blob:')) {
        request.continue();
      } else {
        outside.push(target);
        request.abort();
      }
    });
    // Blocked scripts, styles or connections show up as CSP reports in the console.
    page.on('console', (message) => {
      if (/Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
    });
    page.on('pageerror', (error) => problems.push(String(error)));
    await page.goto(url, { waitUntil: 'networkidle0' });
    // GraphiQL keeps its editors in local storage: set the query and the token there.
    await page.evaluate((token) => {
      localStorage.setItem('graphiql:query', 'query Me {\n  me { handle role }\n}\n');
      localStorage.setItem('graphiql:headers', JSON.stringify({ Authorization: `Bearer ${token}` }));
    }, tokens.frontline);
    await page.reload({ waitUntil: 'networkidle0' });
    await page.waitForSelector('.graphiql-execute-button', { timeout: 20000 });
    await page.click('.graphiql-execute-button');
    await page.waitForFunction(
      () => document.querySelector('.result-window')?.textContent?.includes('"handle": "frontline"'),
      { timeout: 20000 },
    );
    const screenshot = path.join(out, 'graphiql.png');
    await page.screenshot({ path: screenshot });
    if (outside.length) throw new Error(`requests outside the service: ${outside.join(', ')}`);
    if (problems.length) throw new Error(`errors in the page: ${problems.join('\n')}`);
    return `screenshot ${screenshot}`;
  } finally {
    await browser.close();
  }
});

stopService();
if (failures.length) {
  console.log(`\n${failures.length} step(s) failed: ${failures.join('; ')}`);
  console.log(`service log: ${serviceLog}`);
  process.exit(1);
}
console.log('\nall frontend tool checks passed');
