// Loads the demo page in headless Chromium, submits the form for N records, waits until the
// page shows them acknowledged and written to files, charts each shard's throughput and lag,
// lists the lease owners as moves, and saves a screenshot.
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
  // The live charts drew a line per shard, and the lease owners are in the moves list.
  await page.waitForFunction(
    (n) => document.querySelectorAll("#throughput polyline").length >= n
      && document.querySelectorAll("#lag polyline").length >= 1
      && document.querySelectorAll("#moves li").length >= n,
    shards,
    { timeout: 10_000, polling: 200 },
  );
  const moves = await page.locator("#moves li").count();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`browser: the page shows ${count} records acknowledged and written; ${shards} shards charted; ${moves} lease moves; screenshot ${screenshot}`);
} finally {
  await browser.close();
}
