// Lint the TypeScript sources (not the compiled output). Type-aware rules catch floating
// promises and unsafe any, which matter most in servers.
const js = require('@eslint/js');
const tseslint = require('typescript-eslint');
const globals = require('globals');

module.exports = tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'var/**', 'test-artifacts/**', 'ood-apps/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    files: ['services/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: __dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
    },
  },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { sourceType: 'commonjs', globals: globals.node },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  // Plain CommonJS tests beside what they test (deployment, container images).
  { files: ['**/tests/**/*.test.js'], languageOptions: { globals: globals.jest } },
  // Browser modules served to pages.
  { files: ['services/*/static/**/*.js'], languageOptions: { sourceType: 'module', globals: globals.browser } },
);
