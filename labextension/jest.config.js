// Jest with JupyterLab's testing configuration (jsdom, its resolver and shims, ESM packages transformed).
const jestJupyterLab = require('@jupyterlab/testing/lib/jest-config');

const esModules = ['@codemirror', '@jupyter/', '@jupyterlab/', '@microsoft', 'exenv-es6', 'color', 'marked', 'lib0', 'nanoid', 'vscode-ws-jsonrpc', 'y-protocols', 'y-websocket', 'yjs'].join('|');
const base = jestJupyterLab(__dirname);

module.exports = {
  ...base,
  automock: false,
  reporters: ['default'],
  testRegex: 'src/__tests__/.*\\.spec\\.tsx?$',
  testPathIgnorePatterns: ['/lib/', '/node_modules/'],
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`],
  moduleNameMapper: { ...base.moduleNameMapper, '\\.(css|less|sass|scss)$': '<rootDir>/src/__tests__/style-mock.js' }
};
