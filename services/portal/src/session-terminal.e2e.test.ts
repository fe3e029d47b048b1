/**
 * A session and its terminal in a real browser, through the real stack: the portal, the
 * launcher on rootful podman (the cloudlet-base image from scripts/build-images), headless
 * Chromium. Ada (mapped to a host account the stack creates) starts a session from the Sessions
 * page, opens its terminal, runs `id` and sees her own uid; Rosalind cannot open it; stopping the
 * session from the Sessions page closes the terminal and removes the container.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '@cloudlet/core/browser';
import { waitFor } from '@cloudlet/core/testing';
import { REPO_ROOT } from './testing/harness';
import { type HostAccount, type SessionStack, startSessionStack } from './testing/session-stack';

jest.setTimeout(300_000);

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

describe('a session terminal in the browser', () => {
  let stack: SessionStack;
  let browser: Browser;

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    [stack, browser] = await Promise.all([startSessionStack({ backend: 'podman' }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  async function signIn(page: Page, username: string): Promise<void> {
    await page.goto(`${stack.url}/`);
    await page.click('#sign-in');
    await page.selectOption('#username', username);
    await page.fill('#password', `pw-${username}`);
    await page.click('#submit');
    await page.waitForURL(`${stack.url}/`);
  }

  const containers = (): string[] => (stack.podman?.('ps', '-a', '--format', '{{.Names}}', '--filter', `label=cloudlet.launcher=${stack.instance}`) ?? '').split('\n').filter(Boolean);

  test("ada's terminal runs id as her uid; rosalind cannot open it; stopping the session closes it", async () => {
    const account = stack.ada as HostAccount;
    const adaContext = await browser.newContext({ viewport: { width: 1200, height: 800 } });
    const page = await adaContext.newPage();
    await signIn(page, 'ada');
    await page.click('#open-sessions');
    await page.waitForURL(`${stack.url}/sessions`);
    await page.click('[data-app="shell"] button[type="submit"]');
    const row = page.locator('tr.session[data-state="running"]');
    await row.waitFor({ timeout: 60_000 });
    const sessionId = (await row.getAttribute('data-session')) as string;
    expect(containers()).toEqual([`cloudlet-${stack.instance}-${sessionId}`]);

    await row.getByRole('link', { name: 'Terminal' }).click();
    await page.waitForURL(`${stack.url}/sessions/${sessionId}/terminal`);
    await page.waitForSelector('#terminal-status[data-state="open"]', { timeout: 30_000 });
    await page.locator('#terminal').click();
    await page.keyboard.type('id');
    await page.keyboard.press('Enter');
    // A locator, not waitForFunction: the page's CSP rightly forbids evaluating strings.
    await page.locator('.xterm-rows', { hasText: `uid=${account.uid}` }).waitFor({ timeout: 30_000 });
    const text = (await page.locator('.xterm-rows').textContent()) ?? '';
    expect(text).toMatch(new RegExp(`uid=${account.uid}(\\(\\S*\\))? gid=${account.gid}`));
    expect(text).not.toMatch(/uid=0\b/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'portal-session-terminal.png') });

    // Rosalind, signed in in her own browser context: ada's session is not hers to see or enter.
    const rosalindContext = await browser.newContext();
    const other = await rosalindContext.newPage();
    await signIn(other, 'rosalind');
    const refused = await other.goto(`${stack.url}/sessions/${sessionId}/terminal`);
    expect(refused?.status()).toBe(404);
    expect(await other.locator('#terminal').count()).toBe(0);
    await other.goto(`${stack.url}/sessions`);
    expect(await other.locator('tr.session').count()).toBe(0);
    await rosalindContext.close();

    // Ada stops it from the Sessions page in a second tab; the open terminal is closed by the launcher.
    const list = await adaContext.newPage();
    await list.goto(`${stack.url}/sessions`);
    await list.locator(`tr.session[data-session="${sessionId}"]`).getByRole('button', { name: 'Stop' }).click();
    await list.waitForURL(`${stack.url}/sessions`);
    expect(await list.locator('tr.session').count()).toBe(0);
    await page.waitForSelector('#terminal-status[data-state="closed"]', { timeout: 30_000 });
    expect(await page.textContent('#terminal-status')).toContain('the session ended');
    await waitFor(() => containers().length === 0, 30_000, 'the session container to be removed');
    await adaContext.close();
  });
});
