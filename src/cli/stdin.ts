/**
 * The first line of standard input (without its line ending): how the CLI takes a PIN (`user
 * set-pin`, `authenticator approve` in PIN mode), so that it never shows in `ps` or the shell
 * history. Stops reading at the first newline.
 */
export async function readFirstLine(prompt = 'PIN (then Enter): '): Promise<string> {
  const stdin = process.stdin;
  if (stdin.isTTY) process.stderr.write(prompt);
  let text = '';
  for await (const chunk of stdin) {
    text += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    if (text.includes('\n')) break;
  }
  return (text.split('\n')[0] ?? '').replace(/\r$/, '');
}
