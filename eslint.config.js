import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules',
      'dist',
      '.build',
      'dist-dev',
      'dist-sample',
      'coverage',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
        Buffer: 'readonly',
      },
    },
  },
  {
    files: ['lib/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      // A path inside a Nest package may move in any release, and a static
      // import of a moved one fails the application at import time:
      // lib/pipeline/nest-internals.ts loads those with a fallback.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^@nestjs/(common|core|microservices)/',
              message:
                'Import Nest from its package root; what only a deep path has goes through lib/pipeline/nest-internals.ts.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'sample/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
