// Saturation: unique (never cached) sentences at a rising arrival rate, to find the
// throughput where latency turns up and the service starts shedding load (503).
//
//   k6 run k6/saturation.js
//   BASE_URL=http://127.0.0.1:3000 START_RATE=2 PEAK_RATE=40 DURATION=60s TEXTS=10 k6 run k6/saturation.js
// Rates are requests per second; each request carries TEXTS sentences.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const START_RATE = parseInt(__ENV.START_RATE || '2', 10);
const PEAK_RATE = parseInt(__ENV.PEAK_RATE || '40', 10);
const DURATION = __ENV.DURATION || '60s';
const TEXTS = parseInt(__ENV.TEXTS || '10', 10);

const sentences = new Counter('sentences_classified');
const shed = new Counter('requests_shed');

const WORDS = ('the a film movie story plot acting cast ending music was is felt seemed ' +
  'great awful dull brilliant moving boring clever tired warm cold funny sad long short').split(' ');

export const options = {
  scenarios: {
    rising: {
      executor: 'ramping-arrival-rate',
      startRate: START_RATE,
      timeUnit: '1s',
      preAllocatedVUs: 50,
      maxVUs: 200,
      stages: [{ duration: DURATION, target: PEAK_RATE }],
    },
  },
  thresholds: {
    // a saturation run is expected to shed (503); anything else is a failure
    'checks{check:status is 200 or 503}': ['rate==1.0'],
  },
};

// Twelve random words and a number unique to this run: about 16 tokens, like the
// sentences of the raw-model benchmark, and never in the cache.
function sentence(j) {
  const words = [];
  for (let i = 0; i < 12; i++) words.push(WORDS[Math.floor(Math.random() * WORDS.length)]);
  return `${words.join(' ')} ${(__VU * 1000003 + __ITER * 101 + j) % 99991}${j}`;
}

export default function () {
  const texts = Array.from({ length: TEXTS }, (_, j) => sentence(j));
  const res = http.post(`${BASE_URL}/predict`, JSON.stringify({ text: texts }), {
    headers: { 'Content-Type': 'application/json' },
    responseCallback: http.expectedStatuses(200, 503),
  });
  check(res, { 'status is 200 or 503': (r) => r.status === 200 || r.status === 503 });
  if (res.status === 200) sentences.add(texts.length);
  else if (res.status === 503) shed.add(1);
}
