import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// Built by `npm install` (the root package's prepare script) into console/dist, which
// the admin server serves under a `default-src 'self'` Content-Security-Policy.
export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Inlined assets would become data: URLs, which the policy does not allow.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
