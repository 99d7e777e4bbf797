import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'fixtures/', 'test/kernel/captures/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
      // Prettier formats at 120 columns; this keeps code there (a long message string or comment may run on).
      'max-len': [
        'error',
        {
          code: 120,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreComments: true,
          ignoreUrls: true,
          ignoreRegExpLiterals: true,
        },
      ],
    },
  },
  {
    // bin/ is CommonJS (bin/package.json): `--version` alone requires one file, without the ES module loader
    files: ['bin/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', __filename: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    files: ['test/**/*.ts', 'bench/**', 'scripts/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  // Layering (docs/ARCHITECTURE.md): arrows point down only.
  //   cli/ → features (model/ audit/ forensics/ recover/) → pool-source/ → format readers (docker/ thin/ lvm/), dm/, io/
  ...layer(
    ['src/docker/**', 'src/thin/**', 'src/lvm/**'],
    'format readers',
    ['cli', 'dm', 'model', 'audit', 'forensics', 'recover', 'pool-source'],
    true,
  ),
  ...layer(
    ['src/io/**'],
    'io/',
    ['cli', 'dm', 'model', 'audit', 'forensics', 'recover', 'pool-source', 'docker', 'thin', 'lvm'],
    true,
  ),
  ...layer(['src/dm/**'], 'dm/', ['cli', 'model', 'audit', 'forensics', 'recover', 'pool-source'], false),
  ...layer(['src/pool-source/**'], 'pool-source/', ['cli', 'model', 'audit', 'forensics', 'recover'], false),
  ...layer(['src/model/**'], 'model/ (the Docker join)', ['cli', 'audit', 'forensics', 'recover'], false),
  ...layer(['src/audit/**'], 'audit/', ['cli', 'forensics', 'recover'], false),
  ...layer(['src/forensics/**', 'src/recover/**'], 'forensics/ and recover/', ['cli', 'audit'], false),
);

/** An import rule for `files`: none of the `banned` src/ folders; `pure`: no processes and no CLI libraries either. */
function layer(files, what, banned, pure) {
  const patterns = [
    {
      group: banned.flatMap((d) => [`**/${d}/**`, `../${d}/*`, `./${d}/*`]),
      message: `${what} must not import ${banned.join('/, ')}/ (docs/ARCHITECTURE.md)`,
    },
  ];
  if (pure)
    patterns.push({
      group: ['execa', 'node:child_process', 'child_process', 'commander', 'cli-table3'],
      message: `${what} run no processes and render nothing`,
    });
  return [{ files: files.map((f) => `${f}/*.ts`), rules: { 'no-restricted-imports': ['error', { patterns }] } }];
}
