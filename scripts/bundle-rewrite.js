/**
 * The text rewrites scripts/build.js makes to esbuild's CommonJS bundle of the CLI (dist/bundle/main.cjs), each a
 * pure function of the bundle's text that throws when the text is not what it expects (a build that would run
 * differently stops there). test/cli/bundle-rewrite.test.ts feeds them both.
 */
import { transformSync } from 'esbuild';

/** The packages left out of the bundle and imported at run time (scripts/build.js `external`). */
export const EXTERNAL_IMPORTS = ['dockerode', 'execa'];

/**
 * The externals' import() goes through __dmiImport, which bin/bundle.js passes in (an import() of its own, in a file
 * Node's loader compiled): Node 20's V8 code cache drops the host-defined options of the functions it restores, so an
 * import() inside them fails ("A dynamic import callback was not specified"; Node 22 and 24 keep them). Under Bun
 * (the binary) __dmiImport is not defined and the literal import(), which Bun bundles, runs.
 */
export function routeExternalImports(code) {
  const seen = new Set();
  const routed = code.replace(/\bimport\("([\w@/.-]+)"\)/g, (whole, name) => {
    if (!EXTERNAL_IMPORTS.includes(name)) return whole;
    seen.add(name);
    return `(typeof __dmiImport === "function" ? __dmiImport("${name}") : import("${name}"))`;
  });
  if (seen.size !== EXTERNAL_IMPORTS.length)
    throw new Error(`expected import() of ${EXTERNAL_IMPORTS.join(' and ')}, found ${[...seen].join(', ') || 'none'}`);
  return routed;
}

const bare = (js) => transformSync(js, { minifyWhitespace: true, legalComments: 'none', format: 'cjs' }).code;

/**
 * An all-ASCII file: esbuild escapes non-ASCII characters in code, not in comments, and one such character makes V8
 * hold the whole source as a two-byte string (read, hashed against the cache and scanned at twice the size: about
 * 9M instructions per run). The comments' characters become `\u{...}` text; the code must stay the same, which the
 * comparison of both texts with their comments and whitespace removed checks.
 */
export function asciiOnly(code) {
  const ascii = code.replace(/[^ -~\t\n\r]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  if (bare(ascii) !== bare(code)) throw new Error('non-ASCII characters outside comments');
  return ascii;
}

const NODE_COPY = /\b([\w$]+) = __toESM\(require\("(node:[\w/]+)"\), 1\)/g;

/**
 * Node's built-in modules as they are: esbuild turns each module's `import * as fs from 'node:fs'` into
 * `__toESM(require("node:fs"), 1)`, a copy of the module object with a getter per property (about 100 for fs), made
 * once per importing module (29 of them import fs) and then called on every `fs.` access (three per file read when
 * `containers` reads 30,000 files). A namespace import reads only the module's own properties, which the module
 * object has too; a default import (`import fs from 'node:fs'`) reads `.default` of the copy, which the module object
 * has not: such a bundle is refused.
 */
export function plainBuiltins(code) {
  const copies = [...code.matchAll(NODE_COPY)];
  if (copies.length === 0) throw new Error('no __toESM(require("node:...")) copy found: esbuild changed its output');
  const defaults = copies
    .filter(([, name]) => new RegExp(`(?<![\\w$])${name.replace(/\$/g, '\\$')}\\.default\\b`).test(code))
    .map(([, name, mod]) => `${name} (${mod})`);
  if (defaults.length > 0) throw new Error(`a default import of a node: module reads .default: ${defaults.join(', ')}`);
  const plain = code.replace(NODE_COPY, '$1 = require("$2")');
  if (/__toESM\(require\("node:/.test(plain)) throw new Error('a node: module is still copied by __toESM');
  return plain;
}

/**
 * What bin/bundle.js compiles: the bundle inside Node's module wrapper with one more argument (__dmiImport, above),
 * whitespace and comments removed, ASCII, one file read as Latin-1. Every page this VM touches costs a page fault
 * (~19 us here), and the source was read, copied into a V8 string and copied again when the wrapper was concatenated
 * to it: written whole at build time, the 622 KB became 435 KB read once (450 fewer page faults for `container
 * <prefix>`). Names are kept, so a stack trace (--debug) still names our functions.
 */
export function vmScriptSource(code) {
  const { code: min } = transformSync(code, {
    minifyWhitespace: true,
    legalComments: 'none',
    format: 'cjs',
    charset: 'ascii',
  });
  return `(function (exports, require, module, __filename, __dirname, __dmiImport) {${min}\n});`;
}
