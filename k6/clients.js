// Closed loop: VUS clients, each sending one request after another with TEXTS unique
// (never cached) sentences, for DURATION. The benchmark's W1/W2/W3 workloads:
//
//   VUS=32 TEXTS=1 k6 run k6/clients.js     # W1: many clients, one text each
//   VUS=16 TEXTS=8 k6 run k6/clients.js     # W2: fewer clients, 8 texts each
//   VUS=1  TEXTS=1 k6 run k6/clients.js     # W3: one client, one text
//   ROUTE=/noop ...                         # any other POST route taking {"text": [...]}
//   OFFSET=100000000 ...                    # other unique texts than a run without it
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const ROUTE = __ENV.ROUTE || '/predict';
const VUS = parseInt(__ENV.VUS || '32', 10);
const TEXTS = parseInt(__ENV.TEXTS || '1', 10);
const DURATION = __ENV.DURATION || '30s';
// 1: texts repeat (CACHED), so every request after the first few is a cache hit
const CACHED = __ENV.CACHED === '1';
// added to every unique text's number: runs against the same cache with different OFFSETs never share a text
const OFFSET = parseInt(__ENV.OFFSET || '0', 10);

const sentences = new Counter('sentences_classified');

const WORDS = ('the a film movie story plot acting cast ending music was is felt seemed ' +
  'great awful dull brilliant moving boring clever tired warm cold funny sad long short').split(' ');

export const options = {
  scenarios: {
    closed: { executor: 'constant-vus', vus: VUS, duration: DURATION, gracefulStop: '30s' },
  },
  thresholds: {
    // every request must succeed: no shedding, no errors at these loads
    'checks{check:status is 200}': ['rate==1.0'],
  },
};

// Twelve words and a number unique to this VU and iteration: about 16 tokens.
function sentence(j) {
  const words = [];
  for (let i = 0; i < 12; i++) words.push(WORDS[(__VU * 7 + __ITER * 13 + j * 17 + i * 5) % WORDS.length]);
  const n = CACHED ? j : OFFSET + __VU * 1000003 + __ITER * 101 + j;
  return `${words.join(' ')} ${n}`;
}

export default function () {
  const texts = Array.from({ length: TEXTS }, (_, j) => (CACHED ? `cached sentence number ${j % 8}` : sentence(j)));
  const res = http.post(`${BASE_URL}${ROUTE}`, JSON.stringify({ text: texts }), {
    headers: { 'Content-Type': 'application/json' },
  });
  check(res, { 'status is 200': (r) => r.status === 200 });
  if (res.status === 200) sentences.add(texts.length);
}
