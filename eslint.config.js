// Lint: typescript-eslint's type-checked rules (no floating promises, no any) and the layering
// of ARCHITECTURE.md: transports → flows → core / store / channels, never the other way.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const restrict = (patterns) => ['error', { patterns }];

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: { allowDefaultProject: ['*.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'read configuration through src/config.ts' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict([
        { group: ['**/store/**', '**/flows/**', '**/http/**', '**/cli/**', '**/channels/**', '**/methods/**'], message: 'core is pure: it imports no other layer' },
        { group: ['fastify', 'kysely', 'pg', 'better-sqlite3', 'node:fs', 'node:net', 'node:http', 'node:child_process'], message: 'core does no I/O' },
      ]),
    },
  },
  {
    files: ['src/methods/**/*.ts'],
    rules: { 'no-restricted-imports': restrict([{ group: ['**/flows/**', '**/http/**', '**/cli/**', 'fastify'], message: 'methods sit below flows' }]) },
  },
  {
    files: ['src/store/**/*.ts'],
    rules: { 'no-restricted-imports': restrict([{ group: ['**/flows/**', '**/http/**', '**/cli/**', '**/methods/**', 'fastify'], message: 'the store sits below flows' }]) },
  },
  {
    files: ['src/flows/**/*.ts'],
    rules: { 'no-restricted-imports': restrict([{ group: ['**/http/**', '**/cli/**', 'fastify', 'commander'], message: 'flows do not know their transport' }]) },
  },
  {
    files: ['src/config.ts', 'test/**/*.ts', 'bench/**/*.ts', 'bin/*.js', '**/*.test.ts', 'vitest.config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    // Tests and the benchmark read JSON answers freely; production code may not.
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly' } } },
  // The authenticator's service worker runs in a ServiceWorkerGlobalScope.
  { files: ['web/*/public/*.js'], languageOptions: { globals: { self: 'readonly', caches: 'readonly', fetch: 'readonly', URL: 'readonly' } } },
);
