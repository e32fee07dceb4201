import { describe, it, expect } from 'vitest';
import { detectTokenFormat } from './detect-token-format.js';

describe('detectTokenFormat', () => {
  it('reads XML (after a BOM and blank space) as PSKC', () => {
    expect(detectTokenFormat('<?xml version="1.0"?><KeyContainer/>')).toBe('pskc');
    expect(detectTokenFormat('\uFEFF\r\n  <KeyContainer Version="1.0"/>')).toBe('pskc');
  });

  it('reads anything else as CSV', () => {
    expect(detectTokenFormat('upn,serial number,secret key,time interval,manufacturer,model\n')).toBe('csv');
    expect(detectTokenFormat('\uFEFFupn,serial number')).toBe('csv');
    expect(detectTokenFormat('')).toBe('csv');
  });
});
