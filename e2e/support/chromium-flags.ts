/**
 * How every test here launches Debian's Chromium (the e2e and Vitest's `chromium` project): its
 * path and the flags of DESIGN.md. Offline and loopback only: no background traffic, no DNS
 * lookups beyond this machine, no mDNS ICE candidates; loopback candidates allowed for WebRTC
 * (with camera and microphone permission on the context).
 */

/** Where Chromium is. @default '/usr/bin/chromium' or $CHROMIUM_PATH */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** The launch flags. */
export const CHROMIUM_ARGS: readonly string[] = Object.freeze([
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--allow-loopback-in-peer-connection',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
])

/** Permissions a context needs to gather loopback ICE candidates. */
export const CHROMIUM_PERMISSIONS: readonly string[] = Object.freeze(['camera', 'microphone'])
