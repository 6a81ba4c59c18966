//! Just enough of Python's pickle format to read dataset files: dicts, lists, tuples, numbers,
//! strings, bytes and numpy arrays, written by Python 2's cPickle (CIFAR's "python version") or by
//! Python 3 with any protocol from 0 to 5 (in-band buffers).
//!
//! No code is run: the only callables understood are the ones numpy and Python use to rebuild
//! arrays, dtypes and byte strings; anything else is an error naming the byte offset. The memo
//! keeps copies (cheap: byte payloads are shared), which is exact for data files that never
//! mutate an object after referring back to it.
//!
//! (Over 400 lines: the interpreter is one `match` over the protocol's opcodes, read best in one
//! place.)

use std::rc::Rc;

/// A value read from a pickle.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A byte string (`bytes`, or Python 2's `str`).
    Bytes(Rc<[u8]>),
    /// A text string.
    Str(Rc<str>),
    /// A list.
    List(Vec<Value>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A reference to a global, `module.name`, before it is called.
    Global(Rc<str>, Rc<str>),
    /// A numpy dtype, by its descriptor (`u1`, `<i8`, ...).
    Dtype(String),
    /// A numpy array.
    Array(Array),
}

/// A numpy array as raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dtype's descriptor without its byte order (`u1`, `i8`, `f4`, ...).
    pub dtype: String,
    /// `<`, `>` or `|` (not applicable).
    pub byte_order: char,
    /// The shape.
    pub shape: Vec<usize>,
    /// Column-major storage.
    pub fortran: bool,
    /// The elements' bytes.
    pub data: Rc<[u8]>,
}

impl Value {
    /// The entry of a dict under a key spelled `key`, as bytes (Python 2) or text (Python 3).
    pub fn get(&self, key: &str) -> Option<&Value> {
        let Value::Dict(items) = self else {
            return None;
        };
        items.iter().find_map(|(k, v)| match k {
            Value::Bytes(b) if &b[..] == key.as_bytes() => Some(v),
            Value::Str(s) if &**s == key => Some(v),
            _ => None,
        })
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
            Value::Dict(_) => "dict",
            Value::Global(..) => "global",
            Value::Dtype(_) => "numpy dtype",
            Value::Array(_) => "numpy array",
        }
    }
}

/// Why a pickle could not be read: the byte offset of the opcode, and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Offset of the opcode (or of the end of the input when it is truncated).
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

type Result<T> = std::result::Result<T, PickleError>;

enum Slot {
    Value(Value),
    Mark,
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    op_at: usize,
    stack: Vec<Slot>,
    memo: std::collections::HashMap<u32, Value>,
}

/// Read the first pickled object of `bytes`.
pub fn load(bytes: &[u8]) -> Result<Value> {
    Machine {
        bytes,
        at: 0,
        op_at: 0,
        stack: Vec::new(),
        memo: std::collections::HashMap::new(),
    }
    .run()
}

impl<'a> Machine<'a> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T> {
        Err(PickleError {
            offset: self.op_at,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        match self.at.checked_add(n) {
            Some(end) if end <= self.bytes.len() => {
                let taken = &self.bytes[self.at..end];
                self.at = end;
                Ok(taken)
            }
            _ => Err(PickleError {
                offset: self.bytes.len(),
                message: format!(
                    "truncated: the opcode at byte {} needs {n} more bytes, {} are left",
                    self.op_at,
                    self.bytes.len() - self.at
                ),
            }),
        }
    }

    fn uint(&mut self, n: usize) -> Result<u64> {
        let raw = self.take(n)?;
        Ok(raw
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn len(&mut self, n: usize) -> Result<usize> {
        let len = self.uint(n)?;
        usize::try_from(len).or_else(|_| self.fail(format!("length {len} is too large")))
    }

    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.bytes[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(PickleError {
                offset: self.bytes.len(),
                message: format!(
                    "truncated: the opcode at byte {} has no newline",
                    self.op_at
                ),
            });
        };
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).or_else(|_| self.fail("a text argument is not UTF-8"))
    }

    fn push(&mut self, value: Value) {
        self.stack.push(Slot::Value(value));
    }

    fn pop(&mut self) -> Result<Value> {
        match self.stack.pop() {
            Some(Slot::Value(v)) => Ok(v),
            Some(Slot::Mark) => self.fail("expected a value, found a mark"),
            None => self.fail("the stack is empty"),
        }
    }

    fn top(&mut self) -> Result<&mut Value> {
        let op_at = self.op_at;
        match self.stack.last_mut() {
            Some(Slot::Value(v)) => Ok(v),
            _ => Err(PickleError {
                offset: op_at,
                message: "expected a value on the stack".into(),
            }),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return self.fail("no mark on the stack");
        };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|s| match s {
                Slot::Value(v) => v,
                Slot::Mark => unreachable!("the last mark was found above"),
            })
            .collect())
    }

    fn memo_put(&mut self, key: u32) -> Result<()> {
        let value = self.top()?.clone();
        self.memo.insert(key, value);
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> Result<()> {
        match self.memo.get(&key) {
            Some(v) => {
                let v = v.clone();
                self.push(v);
                Ok(())
            }
            None => self.fail(format!("memo entry {key} was never stored")),
        }
    }

    fn bytes_value(&mut self, n: usize) -> Result<()> {
        let raw = self.take(n)?;
        self.push(Value::Bytes(raw.into()));
        Ok(())
    }

    fn text_value(&mut self, n: usize) -> Result<()> {
        let raw = self.take(n)?;
        let text = std::str::from_utf8(raw).or_else(|_| self.fail("a string is not UTF-8"))?;
        self.push(Value::Str(text.into()));
        Ok(())
    }

    fn set_items(&mut self, pairs: Vec<Value>) -> Result<()> {
        if !pairs.len().is_multiple_of(2) {
            return self.fail("a dict update with a key and no value");
        }
        let Value::Dict(items) = self.top()? else {
            return self.fail("setting items on something that is not a dict");
        };
        let mut pairs = pairs.into_iter();
        while let (Some(k), Some(v)) = (pairs.next(), pairs.next()) {
            match items.iter_mut().find(|(key, _)| *key == k) {
                Some(entry) => entry.1 = v,
                None => items.push((k, v)),
            }
        }
        Ok(())
    }

    fn append(&mut self, values: Vec<Value>) -> Result<()> {
        let Value::List(items) = self.top()? else {
            return self.fail("appending to something that is not a list");
        };
        items.extend(values);
        Ok(())
    }

    fn run(mut self) -> Result<Value> {
        loop {
            self.op_at = self.at;
            let op = self.take(1)?[0];
            match op {
                0x80 => {
                    let version = self.uint(1)?;
                    if version > 5 {
                        return self.fail(format!("pickle protocol {version} is newer than 5"));
                    }
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.push(v);
                }
                b'N' => self.push(Value::None),
                0x88 => self.push(Value::Bool(true)),
                0x89 => self.push(Value::Bool(false)),
                b'I' | b'L' => {
                    let line = self.line()?;
                    let value = match line {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        text => match text.trim_end_matches('L').parse() {
                            Ok(i) => Value::Int(i),
                            Err(_) => return self.fail(format!("`{text}` is not an integer")),
                        },
                    };
                    self.push(value);
                }
                b'J' => {
                    let raw = self.uint(4)? as u32;
                    self.push(Value::Int(i64::from(raw as i32)));
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Value::Int(v as i64));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.len(1)?
                    } else {
                        self.len(4)?
                    };
                    let raw = self.take(n)?;
                    if n > 8 {
                        return self.fail(format!("a {n}-byte integer does not fit in 64 bits"));
                    }
                    let mut value = raw
                        .iter()
                        .rev()
                        .fold(0i64, |acc, &b| (acc << 8) | i64::from(b));
                    if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 {
                        value -= 1i64 << (8 * n);
                    }
                    self.push(Value::Int(value));
                }
                b'F' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(f) => self.push(Value::Float(f)),
                        Err(_) => return self.fail(format!("`{line}` is not a float")),
                    }
                }
                b'G' => {
                    let raw = self.take(8)?;
                    let f = f64::from_be_bytes(raw.try_into().expect("8 bytes"));
                    self.push(Value::Float(f));
                }
                b'S' => {
                    let line = self.line()?;
                    let Some(inner) = line
                        .strip_prefix('\'')
                        .and_then(|l| l.strip_suffix('\''))
                        .or_else(|| line.strip_prefix('"').and_then(|l| l.strip_suffix('"')))
                    else {
                        return self.fail("a STRING argument is not quoted");
                    };
                    let bytes = unescape(inner).or_else(|m| self.fail(m))?;
                    self.push(Value::Bytes(bytes.into()));
                }
                b'T' => {
                    let n = self.len(4)?;
                    self.bytes_value(n)?;
                }
                b'U' | b'C' => {
                    let n = self.len(1)?;
                    self.bytes_value(n)?;
                }
                b'B' => {
                    let n = self.len(4)?;
                    self.bytes_value(n)?;
                }
                0x8e | 0x96 => {
                    let n = self.len(8)?;
                    self.bytes_value(n)?;
                }
                b'X' => {
                    let n = self.len(4)?;
                    self.text_value(n)?;
                }
                0x8c => {
                    let n = self.len(1)?;
                    self.text_value(n)?;
                }
                0x8d => {
                    let n = self.len(8)?;
                    self.text_value(n)?;
                }
                b'V' => {
                    let line = self.line()?;
                    self.push(Value::Str(line.into()));
                }
                b']' => self.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b')' => self.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items));
                }
                b'}' => self.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Value::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Value::Global(module.into(), name.into()));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.push(Value::Global(m, n)),
                        _ => return self.fail("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let value = self.call(callable, args)?;
                    self.push(value);
                }
                b'b' => {
                    let state = self.pop()?;
                    let op_at = self.op_at;
                    let object = self.top()?;
                    if let Err(message) = build(object, state) {
                        return Err(PickleError {
                            offset: op_at,
                            message,
                        });
                    }
                }
                b'p' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(key) => self.memo_put(key)?,
                        Err(_) => return self.fail(format!("`{line}` is not a memo key")),
                    }
                }
                b'q' => {
                    let key = self.uint(1)? as u32;
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.uint(4)? as u32;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u32;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let line = self.line()?;
                    match line.parse() {
                        Ok(key) => self.memo_get(key)?,
                        Err(_) => return self.fail(format!("`{line}` is not a memo key")),
                    }
                }
                b'h' => {
                    let key = self.uint(1)? as u32;
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.uint(4)? as u32;
                    self.memo_get(key)?;
                }
                other => {
                    return self.fail(format!(
                        "opcode 0x{other:02x} is not supported by this reader of data pickles"
                    ));
                }
            }
        }
    }

    /// The few constructors data pickles use.
    fn call(&self, callable: Value, args: Value) -> Result<Value> {
        let Value::Global(module, name) = &callable else {
            return self.fail(format!("cannot call a {}", callable.kind()));
        };
        let Value::Tuple(args) = args else {
            return self.fail(format!("arguments of {module}.{name} are not a tuple"));
        };
        match (&**module, &**name, args.as_slice()) {
            ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct", [_, _, _]) => {
                Ok(Value::Array(Array {
                    dtype: String::new(),
                    byte_order: '|',
                    shape: Vec::new(),
                    fortran: false,
                    data: Rc::from(&[][..]),
                }))
            }
            ("numpy", "dtype", [Value::Str(descr) | Value::Global(_, descr), ..]) => {
                Ok(Value::Dtype(descr.to_string()))
            }
            ("numpy", "dtype", [Value::Bytes(descr), ..]) => {
                Ok(Value::Dtype(String::from_utf8_lossy(descr).into_owned()))
            }
            ("_codecs", "encode", [Value::Str(text), Value::Str(encoding)])
                if matches!(&**encoding, "latin1" | "latin-1") =>
            {
                match text
                    .chars()
                    .map(u8::try_from)
                    .collect::<std::result::Result<Vec<u8>, _>>()
                {
                    Ok(bytes) => Ok(Value::Bytes(bytes.into())),
                    Err(_) => self.fail("a latin-1 string holds a character above 255"),
                }
            }
            ("__builtin__" | "builtins", "bytearray", [Value::Bytes(b)]) => {
                Ok(Value::Bytes(b.clone()))
            }
            (
                "numpy.core.numeric" | "numpy._core.numeric",
                "_frombuffer",
                [
                    Value::Bytes(data),
                    Value::Dtype(dtype),
                    Value::Tuple(shape),
                    Value::Str(order),
                ],
            ) => {
                let shape = shape_of(shape).or_else(|m| self.fail(m))?;
                let (byte_order, dtype) = split_descr(dtype, '=');
                Ok(Value::Array(Array {
                    dtype,
                    byte_order,
                    shape,
                    fortran: &**order == "F",
                    data: data.clone(),
                }))
            }
            _ => self.fail(format!(
                "the pickle calls {module}.{name}, which this reader of data pickles does not \
                 run (it knows numpy arrays, dtypes and byte strings)"
            )),
        }
    }
}

/// numpy's `__setstate__` for arrays and dtypes.
fn build(object: &mut Value, state: Value) -> std::result::Result<(), String> {
    match (object, state) {
        (Value::Array(array), Value::Tuple(state)) => {
            // (version, shape, dtype, is_fortran, data), or without the version.
            let fields = match state.as_slice() {
                [Value::Int(_), rest @ ..] if rest.len() == 4 => rest.to_vec(),
                rest if rest.len() == 4 => rest.to_vec(),
                _ => {
                    return Err(
                        "a numpy array's state is not (version, shape, dtype, fortran, data)"
                            .into(),
                    );
                }
            };
            let [Value::Tuple(shape), Value::Dtype(dtype), fortran, data] = fields.as_slice()
            else {
                return Err("a numpy array's state is not (shape, dtype, fortran, data)".into());
            };
            array.shape = shape_of(shape)?;
            (array.byte_order, array.dtype) = split_descr(dtype, '|');
            array.fortran = matches!(fortran, Value::Bool(true) | Value::Int(1));
            array.data = match data {
                Value::Bytes(b) => b.clone(),
                Value::Str(text) => text
                    .chars()
                    .map(u8::try_from)
                    .collect::<std::result::Result<Vec<u8>, _>>()
                    .map_err(|_| "an array's data string holds a character above 255")?
                    .into(),
                Value::List(_) => return Err("arrays of Python objects are not supported".into()),
                other => return Err(format!("an array's data is a {}", other.kind())),
            };
            Ok(())
        }
        (Value::Dtype(descr), Value::Tuple(state)) => {
            let order = match state.get(1) {
                Some(Value::Str(order)) => order.chars().next(),
                Some(Value::Bytes(order)) => order.first().map(|&c| c as char),
                _ => None,
            };
            if let Some(c) = order
                && !descr.starts_with(['<', '>', '|', '='])
            {
                descr.insert(0, c);
            }
            Ok(())
        }
        (object, state) => Err(format!(
            "cannot set the state of a {} from a {}",
            object.kind(),
            state.kind()
        )),
    }
}

fn shape_of(dims: &[Value]) -> std::result::Result<Vec<usize>, String> {
    dims.iter()
        .map(|d| match d {
            Value::Int(n) if *n >= 0 => Ok(*n as usize),
            other => Err(format!("an array dimension is {other:?}")),
        })
        .collect()
}

/// Split `<f4` into ('<', "f4"); a descriptor without an order gets `default`.
fn split_descr(descr: &str, default: char) -> (char, String) {
    match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, descr[1..].to_string()),
        _ => (default, descr.to_string()),
    }
}

/// Python's string escapes in a protocol-0 `STRING` argument.
fn unescape(text: &str) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut chars = text.bytes();
    while let Some(b) = chars.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match chars.next() {
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'\'') => out.push(b'\''),
            Some(b'"') => out.push(b'"'),
            Some(b'x') => {
                let hex: Vec<u8> = chars.by_ref().take(2).collect();
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or("a bad \\x escape in a STRING")?;
                out.push(value);
            }
            _ => return Err("an unknown escape in a STRING".into()),
        }
    }
    Ok(out)
}
