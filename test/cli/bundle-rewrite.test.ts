/**
 * scripts/bundle-rewrite.js: the rewrites scripts/build.js makes to the bundle's text, and the texts they refuse.
 * The built bundle itself is checked in test/cli/startup.test.ts (what a run loads, the cache, the externals).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { asciiOnly, plainBuiltins, routeExternalImports, vmScriptSource } from '../../scripts/bundle-rewrite.js';

const REPO = path.resolve(__dirname, '../..');

describe('bundle rewrites (scripts/bundle-rewrite.js)', () => {
  it('routes import() of dockerode and execa through __dmiImport, leaves other imports, refuses a bundle missing one', () => {
    const code = 'a = () => import("dockerode"); b = () => import("execa"); c = () => import("./x.js");';
    const routed = routeExternalImports(code);
    expect(routed).toContain('__dmiImport("dockerode")');
    expect(routed).toContain('__dmiImport("execa")');
    expect(routed).toContain('import("./x.js")');
    expect(() => routeExternalImports('a = () => import("dockerode");')).toThrow(/found dockerode$/);
    expect(() => routeExternalImports('nothing here')).toThrow(/found none/);
  });

  it('escapes non-ASCII characters where the escape means the same (comments, strings), refuses them where it does not', () => {
    const out = asciiOnly('// caf\u00e9 \u2192 bar\nconst x = 1;\n');
    expect(/[^ -~\t\n\r]/.test(out)).toBe(false);
    expect(out).toContain('\\u{2192}');
    // in a string the escape means the same character (esbuild prints both alike); in a regular expression it does not
    expect(asciiOnly('const s = "caf\u00e9";\n')).toBe('const s = "caf\\u{e9}";\n');
    expect(() => asciiOnly('const r = /caf\u00e9/;\n')).toThrow(/non-ASCII characters outside comments/);
  });

  it('uses node: modules as they are for namespace imports, refuses a default import and a bundle without copies', () => {
    const ns =
      'var fs, fs2;\nfs = __toESM(require("node:fs"), 1);\nfs2 = __toESM(require("node:fs"), 1);\nfs.readFileSync(p);';
    expect(plainBuiltins(ns)).toBe(
      'var fs, fs2;\nfs = require("node:fs");\nfs2 = require("node:fs");\nfs.readFileSync(p);',
    );
    // `import fs from 'node:fs'` reads .default of the copy, which the module object has not
    const dflt = 'var import_node_fs = __toESM(require("node:fs"), 1);\nimport_node_fs.default.readFileSync(p);';
    expect(() => plainBuiltins(dflt)).toThrow(/default import of a node: module reads \.default: import_node_fs/);
    // another name ending the same way is not mistaken for it
    expect(plainBuiltins('x = __toESM(require("node:os"), 1);\nmy_x.default = 1;')).toBe(
      'x = require("node:os");\nmy_x.default = 1;',
    );
    expect(() => plainBuiltins('var fs = require("node:fs");')).toThrow(/esbuild changed its output/);
    // a copy in another form (esbuild's non-node mode, without `, 1`) is left: refused, not half rewritten
    expect(() =>
      plainBuiltins('fs = __toESM(require("node:fs"), 1);\nos = __toESM(require("node:os"));\nfs.statSync(p);'),
    ).toThrow(/a node: module is still copied by __toESM/);
  });

  it('writes the script bin/bundle.js compiles: the wrapper around the code, one line, ASCII, names kept', () => {
    const code = '/* comment */\nfunction readThing(a) {\n  return a + 1;\n}\nmodule.exports = { readThing };\n';
    const src = vmScriptSource(code);
    expect(src.startsWith('(function (exports, require, module, __filename, __dirname, __dmiImport) {')).toBe(true);
    expect(src).not.toContain('comment');
    const mod = { exports: {} as { readThing?: (a: number) => number } };
    (vm.runInThisContext(src) as (...a: unknown[]) => void)(mod.exports, require, mod, 'f', '.', undefined);
    expect(mod.exports.readThing?.(1)).toBe(2);
    expect(mod.exports.readThing?.name).toBe('readThing');
  });

  it('the built bundle went through all of them (npm run build)', () => {
    const dir = path.join(REPO, 'dist/bundle');
    if (!fs.existsSync(path.join(dir, 'main.vm.js'))) throw new Error('run npm run build first');
    const cjs = fs.readFileSync(path.join(dir, 'main.cjs'), 'latin1');
    expect(cjs).not.toMatch(/__toESM\(require\("node:/);
    expect(cjs).toMatch(/= require\("node:fs"\)/);
    const vmSrc = fs.readFileSync(path.join(dir, 'main.vm.js'), 'latin1');
    expect(vmSrc.length).toBeLessThan(cjs.length * 0.8);
    expect(vmSrc).toContain('__dmiImport("execa")');
  });
});
