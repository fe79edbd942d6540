// Loads the demo page in headless Chromium, submits the form for N records, waits until the
// page shows them acknowledged and written to files, and saves a screenshot.
// Usage: node demo.mjs URL N SCREENSHOT.png
import { chromium } from "playwright-core";

const [url, count, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  await page.goto(url);
  await page.fill("#count", String(count));
  await page.click("button[type=submit]");
  await page.waitForFunction(
    (n) => document.getElementById("acknowledged").textContent === String(n)
      && document.getElementById("written").textContent.startsWith(`${n} records`),
    Number(count),
    { timeout: 60_000, polling: 200 },
  );
  const shards = await page.locator("#shards tr").count();
  if (shards < 1) throw new Error("no shards shown");
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`browser: the page shows ${count} records acknowledged and written; ${shards} shards; screenshot ${screenshot}`);
} finally {
  await browser.close();
}
