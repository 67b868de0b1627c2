/**
 * Debian's Chromium driven by Playwright (`playwright`, never its browser download), with the flags of DESIGN.md for loopback-only
 * WebRTC (no STUN, no mDNS candidates, no lookups of Google hosts) and browser↔browser loopback
 * candidates (camera + microphone permission on each context).
 */
import { existsSync } from 'node:fs'
import { type Browser, type BrowserContext, chromium } from 'playwright'
import { CHROMIUM, CHROMIUM_ARGS, CHROMIUM_PERMISSIONS } from './chromium-flags.ts'

export { CHROMIUM }

/** True when Chromium is installed. */
export function hasChromium(): boolean {
  return existsSync(CHROMIUM)
}

/** A launched browser (Playwright gives it a fresh temporary profile and removes it on close). */
export interface LaunchedBrowser {
  browser: Browser
  /** A fresh context allowed to gather loopback ICE candidates. */
  newContext(): Promise<BrowserContext>
  close(): Promise<void>
}

/** Launches headless Chromium with the project's flags. */
export async function launchChromium(): Promise<LaunchedBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless=new', ...CHROMIUM_ARGS],
  })
  return {
    browser,
    newContext: () =>
      browser.newContext({ permissions: [...CHROMIUM_PERMISSIONS], viewport: { width: 1280, height: 900 } }),
    async close() {
      await browser.close().catch(() => undefined)
    },
  }
}
