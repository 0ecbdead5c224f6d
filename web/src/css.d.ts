// esbuild bundles the stylesheet that main.tsx imports into app.css.
declare module '*.css';
