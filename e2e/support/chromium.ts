/**
 * Debian's Chromium driven by Playwright (`playwright`, never its browser download), with the flags of DESIGN.md for loopback-only
 * WebRTC (no STUN, no mDNS candidates, no lookups of Google hosts) and browser↔browser loopback
 * candidates (camera + microphone permission on each context).
 */
import { existsSync } from 'node:fs'
import { type Browser, type BrowserContext, chromium } from 'playwright'

/** Where Chromium is. @default '/usr/bin/chromium' or $CHROMIUM_PATH */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

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
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--allow-loopback-in-peer-connection',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
    ],
  })
  return {
    browser,
    newContext: () =>
      browser.newContext({ permissions: ['camera', 'microphone'], viewport: { width: 1280, height: 900 } }),
    async close() {
      await browser.close().catch(() => undefined)
    },
  }
}
