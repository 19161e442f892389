#!/usr/bin/env node
// Opens a page in headless Chromium through the DevTools protocol (puppeteer-core, driving the
// machine's own Chromium), runs the axe-core accessibility engine in it, saves a screenshot,
// and prints one JSON object: the page's lang and title, its visible text, whether it runs a
// script of its own, and axe's results (violations with their impact and nodes; counts of the
// rest).
//
//   node axe_page.js --modules DIR --chromium BIN --url URL --screenshot PNG [--width 1024]
//
// DIR is a node_modules directory holding `axe-core` and `puppeteer-core` (scripts/test installs
// them into ~/.cache/siirto/node). The page's Content-Security-Policy forbids scripts; the
// engine is injected through the protocol, with the page's CSP bypassed for that alone. Exit 0
// when the page was audited (whatever axe found), 1 when it could not be, 3 when a module is
// missing.
'use strict';

const fs = require('fs');
const path = require('path');

function args() {
  const out = { width: '1024' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      console.error(`bad argument ${argv[i]}`);
      process.exit(2);
    }
    out[argv[i].slice(2)] = argv[i + 1];
  }
  for (const k of ['modules', 'chromium', 'url', 'screenshot']) {
    if (!out[k]) {
      console.error(`missing --${k}`);
      process.exit(2);
    }
  }
  return out;
}

async function main() {
  const a = args();
  let puppeteer;
  let axeSource;
  try {
    puppeteer = require(path.join(a.modules, 'puppeteer-core'));
    axeSource = fs.readFileSync(require.resolve(path.join(a.modules, 'axe-core', 'axe.min.js')), 'utf8');
  } catch (e) {
    console.error(`SKIPPED: ${e.message}`);
    process.exit(3);
  }
  const profile = fs.mkdtempSync(path.join(require('os').tmpdir(), 'siirto-axe-'));
  const browser = await puppeteer.launch({
    executablePath: a.chromium,
    headless: true,
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
      '--disable-background-networking', '--disable-component-update', '--hide-scrollbars'],
  });
  try {
    const page = await browser.newPage();
    const width = parseInt(a.width, 10);
    await page.setViewport({ width, height: 900 });
    // Scripts the page itself would run (it must run none): counted before axe is injected.
    await page.setBypassCSP(true);
    const response = await page.goto(a.url, { waitUntil: 'load' });
    const status = response ? response.status() : 0;
    const own = await page.evaluate(() => ({
      scripts: document.querySelectorAll('script').length,
      lang: document.documentElement.lang,
      title: document.title,
      text: document.body.innerText,
      headers: [...document.querySelectorAll('h1, h2')].map((h) => `${h.tagName}: ${h.textContent}`),
    }));
    await page.screenshot({ path: a.screenshot, fullPage: true });
    await page.evaluate(axeSource);
    const results = await page.evaluate(async () => {
      // Every rule axe has (WCAG 2.0, 2.1 and 2.2 at A and AA, and best practices).
      const r = await window.axe.run(document, { resultTypes: ['violations'] });
      return {
        version: r.testEngine.version,
        violations: r.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.map((n) => n.target.join(' ')),
        })),
        passes: r.passes.length,
        incomplete: r.incomplete.map((v) => v.id),
        inapplicable: r.inapplicable.length,
      };
    });
    console.log(JSON.stringify({ status, ...own, axe: results }));
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`FAIL: ${e.stack || e}`);
  process.exit(1);
});
