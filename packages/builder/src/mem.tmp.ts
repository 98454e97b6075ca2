import { InitramfsBuilder } from './index.ts';

const mib = (n: number) => (n / 2 ** 20).toFixed(0);
let last = '';
const show = (what: string) => {
  const m = process.memoryUsage();
  console.log(
    what.padEnd(14),
    'rss',
    mib(m.rss),
    'heap',
    mib(m.heapUsed),
    'heapTotal',
    mib(m.heapTotal),
    'ext',
    mib(m.external),
    'ab',
    mib(m.arrayBuffers),
  );
};
const t = setInterval(() => show(last), 700);
const b = new InitramfsBuilder({
  image: process.argv[2]!,
  cacheDir: process.argv[3]!,
  onProgress: (e) => {
    if (e.type !== last && e.type !== 'compress') {
      last = e.type;
      show(e.type);
    }
  },
});
await b.build(process.argv[4]!);
clearInterval(t);
show('end');
console.log('maxrss', mib(process.resourceUsage().maxRSS * 1024));
