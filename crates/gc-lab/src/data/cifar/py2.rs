//! Writers of the python version's files, byte for byte in the form Python 2's cPickle gave them
//! (protocol 2; memo from 1; strings `U`/`T`, memoized only when cPickle would: not the
//! temporaries numpy's `__reduce__` makes; lists appended in batches of 1000; numpy's
//! `_reconstruct` + BUILD), for the tests. The layout was derived from cPickle's rules and checked
//! against the real `batches.meta` (158 bytes, reproduced byte for byte) and the sizes of the
//! official batch files.

/// A py2 cPickle protocol-2 stream under construction.
pub struct Writer {
    pub out: Vec<u8>,
    memo: u32,
}

impl Writer {
    pub fn new() -> Self {
        Writer {
            out: vec![0x80, 2],
            memo: 0,
        }
    }

    fn memo(&mut self) {
        self.memo += 1;
        if self.memo < 256 {
            self.out.extend([b'q', self.memo as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend(self.memo.to_le_bytes());
        }
    }

    fn raw_string(&mut self, s: &[u8]) {
        if s.len() < 256 {
            self.out.extend([b'U', s.len() as u8]);
        } else {
            self.out.push(b'T');
            self.out.extend((s.len() as u32).to_le_bytes());
        }
        self.out.extend(s);
    }

    /// A string held by the dict (memoized).
    pub fn string(&mut self, s: &[u8]) {
        self.raw_string(s);
        self.memo();
    }

    pub fn int(&mut self, v: u32) {
        match v {
            0..=0xff => self.out.extend([b'K', v as u8]),
            0x100..=0xffff => {
                self.out.push(b'M');
                self.out.extend((v as u16).to_le_bytes());
            }
            _ => {
                self.out.push(b'J');
                self.out.extend(v.to_le_bytes());
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(format!("{module}\n{name}\n").bytes());
        self.memo();
    }

    fn list<T>(&mut self, values: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.out.push(b']');
        self.memo();
        for chunk in values.chunks(1000) {
            if let [one] = chunk {
                item(self, one);
                self.out.push(b'a');
            } else {
                self.out.push(b'(');
                for v in chunk {
                    item(self, v);
                }
                self.out.push(b'e');
            }
        }
    }

    pub fn int_list(&mut self, values: &[u32]) {
        self.list(values, |w, &v| w.int(v));
    }

    pub fn string_list(&mut self, values: &[Vec<u8>]) {
        self.list(values, |w, v| w.string(v));
    }

    /// `numpy.ndarray` of uint8, C order.
    pub fn u8_array(&mut self, shape: &[u32], data: &[u8]) {
        self.global("numpy.core.multiarray", "_reconstruct");
        self.global("numpy", "ndarray");
        self.out.extend([b'K', 0, 0x85]);
        self.raw_string(b"b");
        self.out.extend([0x87, b'R']);
        self.memo();
        self.out.extend([b'(', b'K', 1]);
        for &d in shape {
            self.int(d);
        }
        self.out.push(if shape.len() == 2 { 0x86 } else { 0x85 });
        self.global("numpy", "dtype");
        self.raw_string(b"u1");
        self.out.extend([b'K', 0, b'K', 1, 0x87, b'R']);
        self.memo();
        self.out.extend([b'(', b'K', 3]);
        self.raw_string(b"|");
        self.out
            .extend(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
        self.out.push(0x89);
        self.raw_string(data);
        self.out.extend(b"tb");
    }

    pub fn begin_dict(&mut self) {
        self.out.push(b'}');
        self.memo();
        self.out.push(b'(');
    }

    pub fn end_dict(mut self) -> Vec<u8> {
        self.out.extend(b"u.");
        self.out
    }
}

fn names(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("leptodactylus_pentadactylus_s_{i:06}.png").into_bytes())
        .collect()
}

/// A CIFAR-100 `train`/`test` file, keys in the official files' order.
pub fn cifar100(fine: &[u32], coarse: &[u32], pixels: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.begin_dict();
    w.string(b"filenames");
    w.string_list(&names(fine.len()));
    w.string(b"batch_label");
    w.string(b"training batch 1 of 1");
    w.string(b"fine_labels");
    w.int_list(fine);
    w.string(b"coarse_labels");
    w.int_list(coarse);
    w.string(b"data");
    w.u8_array(&[fine.len() as u32, 3072], pixels);
    w.end_dict()
}

/// A CIFAR-10 `data_batch_*`/`test_batch` file, keys in the official files' order.
pub fn cifar10(labels: &[u32], pixels: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.begin_dict();
    w.string(b"batch_label");
    w.string(b"training batch 1 of 5");
    w.string(b"labels");
    w.int_list(labels);
    w.string(b"data");
    w.u8_array(&[labels.len() as u32, 3072], pixels);
    w.string(b"filenames");
    w.string_list(&names(labels.len()));
    w.end_dict()
}

/// The real `cifar-10-batches-py/batches.meta` has these 158 bytes; the writer must give them.
#[test]
fn the_writer_reproduces_the_real_batches_meta() {
    let mut w = Writer::new();
    w.begin_dict();
    w.string(b"num_cases_per_batch");
    w.int(10000);
    w.string(b"label_names");
    let labels = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ];
    w.string_list(&labels.map(|l| l.as_bytes().to_vec()));
    w.string(b"num_vis");
    w.int(3072);
    let bytes = w.end_dict();
    assert_eq!(bytes.len(), 158);
    let mut expected =
        b"\x80\x02}q\x01(U\x13num_cases_per_batchq\x02M\x10'U\x0blabel_namesq\x03]q\x04(".to_vec();
    for (i, l) in labels.iter().enumerate() {
        expected.extend([b'U', l.len() as u8]);
        expected.extend(l.as_bytes());
        expected.extend([b'q', 5 + i as u8]);
    }
    expected.extend(b"eU\x07num_visq\x0fM\x00\x0cu.");
    assert_eq!(bytes, expected);
}
