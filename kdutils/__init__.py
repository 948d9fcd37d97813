"""Small helpers shared by `kdkeras`, `export`, `models` and `experiments`.

Standard library and NumPy only, so any of those packages may import it
without importing another (`export` never imports `kdkeras`).

checks    `check_positive_int`: the one check of an int argument's range
staging   atomic staged writes: a hidden sibling checked, then renamed into
          place; `process_alive`, `remove_path`, `replace_path`,
          `write_atomically`
digests   `file_digest`: SHA-256 of a file or a folder, read in chunks
imports   `--import=MODULES` of every command line loading a `.keras` file:
          `FLAG_NAME`, `FLAG_HELP`, `parse_module_names`, `import_modules`
"""
