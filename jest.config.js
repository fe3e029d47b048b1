// Jest runs the compiled tests (tsc -b first): no transform step, and the code under test is
// exactly what ships. Three tiers, chosen by file name.
const common = { testEnvironment: 'node', rootDir: __dirname, modulePathIgnorePatterns: ['<rootDir>/services/[^/]+/src/'] };

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/services/*/dist/**/*.test.js', '<rootDir>/ansible/tests/**/*.test.js', '<rootDir>/scripts/fabric/tests/**/*.test.js'], testPathIgnorePatterns: ['\\.int\\.test\\.js$', '\\.e2e\\.test\\.js$', '/node_modules/'] },
    // Deployment (Ansible, FABRIC slice spec, container images) is tested by plain CommonJS tests beside it.
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/services/*/dist/**/*.int.test.js', '<rootDir>/ansible/tests/**/*.int.test.js', '<rootDir>/scripts/fabric/tests/**/*.int.test.js', '<rootDir>/containers/tests/**/*.int.test.js'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/services/*/dist/**/*.e2e.test.js'] },
  ],
};
