/**
 * The microscope in a real browser: sign in, open the instrument page, see the panel's pixels,
 * click a control and see the microscope change; a viewer's clicks change nothing; control
 * passes between two operators. The same against x11vnc on Xvfb. No page or WebSocket frame
 * the browser receives may contain an instrument's own VNC password.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '@cloudlet/core/browser';
import { waitFor } from '@cloudlet/core/testing';
import { REPO_ROOT } from './testing/harness';
import { type Stack, startStack } from './testing/stack';

jest.setTimeout(120_000);

const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

interface Rect { x: number; y: number; width: number; height: number }
interface Layout { width: number; height: number; controls: { id: string; rect: Rect }[] }

describe('the instrument page', () => {
  let stack: Stack;
  let browser: Browser;
  const received: { what: string; data: Buffer }[] = [];

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    [stack, browser] = await Promise.all([startStack({ x11vnc: true }), launchChromium()]);
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    // Checked last, over everything every page of every test received.
    for (const secret of stack?.instrumentPasswords ?? []) {
      for (const r of received) expect({ what: r.what, leaked: r.data.includes(Buffer.from(secret)) }).toEqual({ what: r.what, leaked: false });
    }
  });

  /** A browser context that records every response body and WebSocket frame it receives. */
  async function watchedPage(): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('response', (res) => {
      res.body().then((b) => received.push({ what: res.url(), data: b })).catch(() => undefined);
    });
    page.on('websocket', (ws) => {
      ws.on('framereceived', (f) => received.push({ what: ws.url(), data: typeof f.payload === 'string' ? Buffer.from(f.payload) : f.payload }));
    });
    return { context, page };
  }

  async function signIn(page: Page, username: string): Promise<void> {
    await page.goto(`${stack.url}/`);
    await page.click('#sign-in');
    await page.selectOption('#username', username);
    await page.fill('#password', `pw-${username}`);
    await page.click('#submit');
    await page.waitForURL(`${stack.url}/`);
  }

  async function openInstrument(page: Page, id: string, expectStatus: RegExp): Promise<void> {
    await page.click(`#instruments [data-instrument="${id}"] a`);
    await page.waitForSelector('#screen canvas');
    await waitForStatus(page, expectStatus, 20_000);
  }

  /** Waits until the control status line matches (the page's code runs in the browser, so it is a string). */
  async function waitForStatus(page: Page, re: RegExp, timeout = 10_000): Promise<void> {
    await page.locator('#control-status', { hasText: re }).waitFor({ timeout });
  }

  /** Reads a framebuffer pixel from noVNC's canvas (its backing store is the remote screen's size). */
  function pixel(page: Page, x: number, y: number): Promise<[number, number, number]> {
    return page.evaluate(`Array.from(document.querySelector('#screen canvas').getContext('2d').getImageData(${x}, ${y}, 1, 1).data.slice(0, 3))`);
  }

  /** Clicks at framebuffer coordinates, whatever the canvas is scaled to. */
  async function clickAt(page: Page, fbWidth: number, fbHeight: number, x: number, y: number): Promise<void> {
    const box = await page.locator('#screen canvas').boundingBox();
    if (!box) throw new Error('no canvas');
    await page.mouse.click(box.x + ((x + 0.5) * box.width) / fbWidth, box.y + ((y + 0.5) * box.height) / fbHeight);
  }

  async function simState(): Promise<Record<string, unknown>> {
    return (await (await fetch(`${stack.simApi}/state`)).json()) as Record<string, unknown>;
  }

  const centre = (r: Rect): [number, number] => [Math.floor(r.x + r.width / 2), Math.floor(r.y + r.height / 2)];

  test('an operator sees the simulated panel and drives it; a viewer cannot', async () => {
    const layout = (await (await fetch(`${stack.simApi}/layout`)).json()) as Layout;
    const valves = layout.controls.find((c) => c.id === 'valves')?.rect as Rect;
    const defocusPlus = layout.controls.find((c) => c.id === 'defocus.plus')?.rect as Rect;
    expect((await simState()).column_valves_open).toBe(false);

    const ada = await watchedPage();
    await signIn(ada.page, 'ada');
    await openInstrument(ada.page, 'krios-sim', /You have control/);
    const [vx, vy] = centre(valves);
    await waitFor(async () => {
      const [r, g] = await pixel(ada.page, vx, vy);
      return r > 150 && g < 100; // closed valves are drawn red
    }, 15_000, 'the red valves button on the canvas');
    await ada.page.screenshot({ path: path.join(ARTIFACTS, 'instrument-operator.png') });
    await clickAt(ada.page, layout.width, layout.height, vx, vy);
    await waitFor(async () => (await simState()).column_valves_open === true, 10_000, 'valves to open');
    await waitFor(async () => {
      const [r, g] = await pixel(ada.page, vx, vy);
      return g > 120 && r < 120; // and now green, seen through the relay
    }, 10_000, 'the valves button to turn green');

    const rosalind = await watchedPage();
    await signIn(rosalind.page, 'rosalind');
    await openInstrument(rosalind.page, 'krios-sim', /Watching/);
    const before = await simState();
    const [dx, dy] = centre(defocusPlus);
    await clickAt(rosalind.page, layout.width, layout.height, dx, dy);
    await clickAt(rosalind.page, layout.width, layout.height, vx, vy);
    await rosalind.page.keyboard.press('v');
    // A negative needs a grace period: a second for the viewer's input to arrive, if it could.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await simState()).toMatchObject({ defocus_um: before.defocus_um, column_valves_open: true, seq: before.seq });
    // The operator's click, sent after, lands: the path was open all along.
    await clickAt(ada.page, layout.width, layout.height, dx, dy);
    await waitFor(async () => (await simState()).defocus_um !== before.defocus_um, 10_000, 'the operator click');
    const after = await simState();
    expect(after.column_valves_open).toBe(true);
    expect(Number(after.defocus_um) - Number(before.defocus_um)).toBeCloseTo(0.1, 5); // one click, the operator's
    await rosalind.page.screenshot({ path: path.join(ARTIFACTS, 'instrument-viewer.png') });
    await rosalind.context.close();
    await ada.context.close();
  });

  test('control passes from one operator to another on request, and can be taken back', async () => {
    const ada = await watchedPage();
    await signIn(ada.page, 'ada');
    await openInstrument(ada.page, 'krios-sim', /You have control|has control/);
    if (!/You have control/.test((await ada.page.textContent('#control-status')) ?? '')) await ada.page.click('#take-control');
    await ada.page.waitForSelector('#release-control:not([hidden])');

    const grace = await watchedPage();
    await signIn(grace.page, 'grace');
    await openInstrument(grace.page, 'krios-sim', /ada has control/);
    await grace.page.click('#request-control');
    await waitForStatus(grace.page, /You asked for it/);
    const give = ada.page.getByRole('button', { name: 'Give control to grace' });
    await give.waitFor({ timeout: 10_000 });
    await give.click();
    await waitForStatus(grace.page, /You have control/);
    await waitForStatus(ada.page, /grace has control/);
    await ada.page.click('#take-control');
    await waitForStatus(ada.page, /You have control/);
    await waitForStatus(grace.page, /ada has control/);
    await grace.context.close();
    await ada.context.close();
  });

  test('against a real x11vnc: the operator moves the pointer, the viewer does not', async () => {
    const display = stack.x11vnc?.display as string;
    const mouse = (): string => execFileSync('xdotool', ['getmouselocation'], { env: { ...process.env, DISPLAY: display }, encoding: 'utf8' });
    const ada = await watchedPage();
    await signIn(ada.page, 'ada');
    await openInstrument(ada.page, 'glacios', /You have control/);
    await clickAt(ada.page, 1024, 768, 300, 200);
    const near = (x: number, y: number): boolean => {
      const m = /x:(\d+) y:(\d+)/.exec(mouse());
      return m !== null && Math.abs(Number(m[1]) - x) <= 2 && Math.abs(Number(m[2]) - y) <= 2;
    };
    await waitFor(() => near(300, 200), 10_000, `the X pointer to move to 300,200 (it is at ${mouse()})`);
    await ada.page.screenshot({ path: path.join(ARTIFACTS, 'instrument-x11vnc.png') });

    const rosalind = await watchedPage();
    await signIn(rosalind.page, 'rosalind');
    await openInstrument(rosalind.page, 'glacios', /Watching/);
    await clickAt(rosalind.page, 1024, 768, 700, 500);
    await rosalind.page.mouse.move(10, 10);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // a grace period for the negative
    expect(near(300, 200)).toBe(true);
    await clickAt(ada.page, 1024, 768, 310, 210);
    await waitFor(() => near(310, 210), 10_000, "the operator's click after the viewer's");
    await rosalind.context.close();
    await ada.context.close();
  });
});
