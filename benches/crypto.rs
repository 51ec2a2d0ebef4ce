//! What field encryption costs: sealing and opening one field of 64 B and 4 KiB with a
//! customer's data key, and unwrapping a data key. Run with `cargo bench --bench crypto`.

use std::hint::black_box;

use aes_gcm_siv::{Aes256GcmSiv, KeyInit};
use criterion::{criterion_group, criterion_main, Criterion};
use needtoknow::crypto::envelope::{self, Slot};
use needtoknow::crypto::vault::{open_field, seal_field};

fn fields(c: &mut Criterion) {
    let key = Aes256GcmSiv::new_from_slice(&[7u8; 32]).unwrap();
    for size in [64usize, 4096] {
        let plaintext = vec![b'x'; size];
        let sealed = seal_field(&key, "customers", "email", 42, &plaintext);
        c.bench_function(&format!("seal a {size} B field"), |b| {
            b.iter(|| {
                black_box(seal_field(
                    &key,
                    "customers",
                    "email",
                    42,
                    black_box(&plaintext),
                ))
            })
        });
        c.bench_function(&format!("open a {size} B field"), |b| {
            b.iter(|| {
                black_box(open_field(&key, "customers", "email", 42, black_box(&sealed)).unwrap())
            })
        });
    }
    let master = Aes256GcmSiv::new_from_slice(&[9u8; 32]).unwrap();
    let slot = Slot {
        table: "data_keys",
        column: "wrapped",
        row: 42,
    };
    let wrapped = envelope::seal(&master, 1, slot, &[3u8; 32]);
    c.bench_function("unwrap a data key and build its cipher", |b| {
        b.iter(|| {
            let bytes = envelope::open(&master, slot, black_box(&wrapped)).unwrap();
            black_box(Aes256GcmSiv::new_from_slice(&bytes).unwrap())
        })
    });
}

criterion_group!(benches, fields);
criterion_main!(benches);
