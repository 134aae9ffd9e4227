// Lint and format, modelled on the Effect monorepo's eslint.config.mjs:
// eslint:recommended + typescript-eslint recommended, the Effect house rules,
// and formatting through @effect/eslint-plugin's `@effect/dprint` rule (dprint's
// TypeScript plugin as wasm inside the npm package: no download at run time).
// `npm run lint` checks, `npm run lint:fix` rewrites what is autofixable.
import * as effectEslint from "@effect/eslint-plugin"
import js from "@eslint/js"
import sortDestructureKeys from "eslint-plugin-sort-destructure-keys"
import tseslint from "typescript-eslint"

export default tseslint.config(
  {
    ignores: [
      "**/dist/**",
      "**/coverage/**",
      "**/reports/**",
      "**/.stryker-tmp/**",
      "**/.dist-test/**",
      "**/node_modules/**",
      "docs/**",
      "test/fixtures/**",
      "**/*.md"
    ]
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...effectEslint.configs.dprint,
  {
    plugins: {
      "sort-destructure-keys": sortDestructureKeys
    },
    languageOptions: {
      parser: tseslint.parser,
      ecmaVersion: 2022,
      sourceType: "module"
    },
    linterOptions: {
      reportUnusedDisableDirectives: "error"
    },
    rules: {
      // The Effect monorepo's rules.
      "no-fallthrough": "off",
      "no-irregular-whitespace": "off",
      "object-shorthand": "error",
      "prefer-destructuring": "off",
      "sort-imports": "off",
      "no-restricted-syntax": [
        "error",
        {
          selector: "CallExpression[callee.property.name='push'] > SpreadElement.arguments",
          message: "Do not use spread arguments in Array.push"
        }
      ],
      "no-unused-vars": "off",
      "require-yield": "off",
      "prefer-rest-params": "off",
      "prefer-spread": "off",
      // The monorepo uses import/no-duplicates; core's rule needs no resolver.
      "no-duplicate-imports": ["error", { allowSeparateTypeImports: true }],
      "sort-destructure-keys/sort-destructure-keys": "error",
      "@typescript-eslint/array-type": ["error", { default: "generic", readonly: "generic" }],
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-unsafe-function-type": "off",
      "@typescript-eslint/no-wrapper-object-types": "off",
      "@typescript-eslint/consistent-type-imports": "error",
      // Under verbatimModuleSyntax `import { type A } from "m"` still loads m at run
      // time; `import type` does not, and is what the cycle check (madge) skips.
      "@typescript-eslint/no-import-type-side-effects": "error",
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" }
      ],
      "@typescript-eslint/ban-ts-comment": "off",
      "@typescript-eslint/explicit-function-return-type": "off",
      "@typescript-eslint/explicit-module-boundary-types": "off",
      "@typescript-eslint/no-array-constructor": "off",
      "@typescript-eslint/no-use-before-define": "off",
      "@typescript-eslint/no-namespace": "off",
      // Outside src (tests, bench, examples, scripts) `any` is a tool, not API.
      "@typescript-eslint/no-explicit-any": "off",
      "@effect/dprint": [
        "error",
        {
          config: {
            indentWidth: 2,
            lineWidth: 120,
            semiColons: "asi",
            quoteStyle: "alwaysDouble",
            trailingCommas: "never",
            operatorPosition: "maintain",
            "arrowFunction.useParentheses": "force"
          }
        }
      ]
    }
  },
  {
    files: ["src/**/*.ts"],
    rules: {
      // This project's rule: no `any` in the library (its public API above all).
      "@typescript-eslint/no-explicit-any": "error",
      "no-console": "error",
      "@effect/no-import-from-barrel-package": [
        "error",
        { packageNames: ["effect", "@effect/platform"] }
      ]
    }
  },
  {
    // Test support may print (the fake provider makes an unrenderable script loud).
    files: ["test/**/*.test.ts"],
    rules: {
      "no-console": "error"
    }
  }
)
