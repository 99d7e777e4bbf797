import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'fixtures/', 'test/kernel/captures/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly',
        setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**', 'scripts/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // src/docker and src/thin are format readers: no CLI, no processes.
    files: ['src/docker/**/*.ts', 'src/thin/**/*.ts', 'src/lvm/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/cli/**', '**/inspect/**', '**/dm/**'], message: 'format readers must not import cli/, inspect/ or dm/' },
          { group: ['execa', 'node:child_process', 'child_process', 'commander', 'cli-table3'], message: 'format readers run no processes and render nothing' },
        ],
      }],
    },
  },
);
