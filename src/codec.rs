//! One codec style for wire messages: a message reads its fields by name,
//! in order, from a [`Reader`] (a cursor over bytes that fails instead of
//! panicking when the bytes run out) and writes them with [`Put`], so no
//! parser indexes a buffer at literal offsets. Integers are big-endian, as
//! everywhere in docs/PROTOCOL.md.

/// The bytes ran out before a field was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message too short")]
pub struct Short;

/// A cursor over a message's bytes: each call takes the next field.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Short> {
        if self.rest.len() < n {
            return Err(Short);
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, Short> {
        Ok(self.array::<1>()?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, Short> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> Result<u32, Short> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, Short> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// Writing fields onto the end of a message.
pub trait Put {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// A big-endian u16.
    fn put_u16(&mut self, v: u16);
    /// A big-endian u32.
    fn put_u32(&mut self, v: u32);
    /// A big-endian u64.
    fn put_u64(&mut self, v: u64);
    /// Bytes as they are.
    fn put_bytes(&mut self, b: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_bytes(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_order_and_short_input_fails() {
        let mut b = Vec::new();
        b.put_bytes(b"AB");
        b.put_u8(1);
        b.put_u16(0x0203);
        b.put_u32(4);
        b.put_u64(5);
        let mut r = Reader::new(&b);
        assert_eq!(r.array::<2>().unwrap(), *b"AB");
        assert_eq!(r.u8().unwrap(), 1);
        assert_eq!(r.u16().unwrap(), 0x0203);
        assert_eq!(r.u32().unwrap(), 4);
        assert_eq!(r.remaining(), 8);
        assert_eq!(r.u64().unwrap(), 5);
        assert_eq!(r.u8(), Err(Short));
        assert_eq!(Reader::new(&[1]).u16(), Err(Short));
    }
}
