//! Reading back what the demo's sink wrote to a local folder.

use kinesis_sink::Compression;

/// Every record line in the objects under a local output (decompressed by their extension),
/// for checks and the headless summary. Temporary files of writes in progress and the sink's
/// manifests (`_manifests/`) are skipped.
pub fn read_local_lines(root: &std::path::Path) -> std::io::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "_manifests" {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let body = Compression::of_key(&name).decompress(&std::fs::read(&path)?)?;
            lines.extend(
                body.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(<[u8]>::to_vec),
            );
        }
    }
    Ok(lines)
}
