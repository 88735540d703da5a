// Course scenario: ramp to 10 virtual users, hold, ramp down. Each request is, with
// probability CACHE_RATE, the same three sentences (served from the prediction cache),
// otherwise a random permutation of ten varied sentences. /health is polled too.
//
//   k6 run --summary-trend-stats="min,med,avg,max,p(99)" k6/load.js
//   BASE_URL=http://127.0.0.1:3000 VUS=10 DURATION=60s CACHE_RATE=0.95 k6 run k6/load.js
import http from 'k6/http';
import { check, sleep } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:3000';
const VUS = parseInt(__ENV.VUS || '10', 10);
const RAMP = __ENV.RAMP || '30s';
const DURATION = __ENV.DURATION || '60s'; // the hold at VUS
const CACHE_RATE = parseFloat(__ENV.CACHE_RATE || '0.95');
const THINK_S = parseFloat(__ENV.THINK_S || '0.1');

const CACHED = ['I love you!', 'I hate you!', 'I am a Kubernetes Cluster!'];
const VARIED = [
  'The film was a delight from start to finish.',
  'I would not watch this again if you paid me.',
  'A clever script let down by wooden acting.',
  'Quietly moving, with a remarkable lead performance.',
  'The plot makes no sense and the jokes fall flat.',
  'Easily the best thing I have seen this year.',
  'It is long, loud and utterly forgettable.',
  'Warm, funny and surprisingly wise.',
  'The second half drags, but the ending lands.',
  'An ugly, cynical mess of a movie.',
];

export const options = {
  stages: [
    { duration: RAMP, target: VUS },
    { duration: DURATION, target: VUS },
    { duration: RAMP, target: 0 },
  ],
  thresholds: {
    http_req_duration: ['p(99)<2000'],
    checks: ['rate==1.0'],
    http_req_failed: ['rate==0'],
  },
};

function shuffled(items) {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export default function () {
  const texts = Math.random() < CACHE_RATE ? CACHED : shuffled(VARIED);
  const res = http.post(`${BASE_URL}/predict`, JSON.stringify({ text: texts }), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'predict' },
  });
  check(res, {
    'predict status is 200': (r) => r.status === 200,
    'one prediction per text': (r) => {
      const body = r.json();
      return body && Array.isArray(body.predictions) && body.predictions.length === texts.length;
    },
    'scores sum to 1': (r) => r.json().predictions.every(
      (row) => Math.abs(row.reduce((s, p) => s + p.score, 0) - 1) < 1e-4),
  });
  if (__ITER % 10 === 0) {
    const health = http.get(`${BASE_URL}/health`, { tags: { name: 'health' } });
    check(health, { 'health is healthy': (r) => r.status === 200 && r.json().status === 'healthy' });
  }
  sleep(THINK_S);
}
