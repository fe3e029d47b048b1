/** A newcomer's first minute, in headless Chromium: sign in with a demo identity, see the dashboard. */
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '@cloudlet/core/browser';
import { type PortalFixture, REPO_ROOT, startPortal } from './testing/harness';

jest.setTimeout(90_000);

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

describe('sign-in in a real browser', () => {
  let portal: PortalFixture;
  let browser: Browser;
  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    [portal, browser] = await Promise.all([startPortal(), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await portal?.stop();
  });

  async function signInAs(page: Page, username: string, password: string): Promise<void> {
    await page.goto(`${portal.url}/`);
    await page.click('#sign-in');
    await page.waitForSelector('#dev-idp');
    await page.selectOption('#username', username);
    await page.fill('#password', password);
    await page.click('#submit');
    await page.waitForURL(`${portal.url}/`);
  }

  test('an operator signs in, sees their instruments, and signs out', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signInAs(page, 'ada', 'pw-ada');
    await expect(page.textContent('h1')).resolves.toContain('Welcome, Ada Lovelace');
    const instrument = page.locator('#instruments .instrument[data-instrument="krios-sim"]');
    await expect(instrument.textContent()).resolves.toContain('operator');
    await expect(page.locator('#username').textContent()).resolves.toBe('ada');
    await page.screenshot({ path: path.join(ARTIFACTS, 'portal-dashboard.png'), fullPage: true });
    // The session cookie is not readable from page scripts.
    await expect(page.evaluate('document.cookie')).resolves.not.toContain('cloudlet.sid');
    await page.click('#sign-out');
    await page.waitForSelector('#signed-out');
    // Signing in again asks again (so people can switch demo identities).
    await signInAs(page, 'rosalind', 'pw-rosalind');
    await expect(page.textContent('h1')).resolves.toContain('Rosalind Franklin');
    await context.close();
  });

  test('an unenrolled researcher is told who they are and that a request was filed', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${portal.url}/`);
    await page.click('#sign-in');
    await page.selectOption('#username', 'newcomer');
    await page.fill('#password', 'pw-newcomer');
    await page.click('#submit');
    await page.waitForSelector('#unmapped');
    const text = (await page.textContent('#unmapped')) ?? '';
    expect(text).toContain('not enrolled yet');
    expect(text).toContain('Elsewhere Institute');
    const requestId = await page.textContent('#request-id');
    const queue = JSON.parse(fs.readFileSync(portal.enrollmentsFile, 'utf8')) as { requests: { id: string; sub: string }[] };
    expect(queue.requests.find((r) => r.id === requestId)?.sub).toBe('demo-newcomer');
    await page.screenshot({ path: path.join(ARTIFACTS, 'portal-unmapped.png'), fullPage: true });
    await context.close();
  });

  test('a wrong password is answered on the sign-in page', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${portal.url}/`);
    await page.click('#sign-in');
    await page.fill('#password', 'nope');
    await page.click('#submit');
    await expect(page.textContent('[role="alert"]')).resolves.toContain('wrong password');
    await context.close();
  });
});
