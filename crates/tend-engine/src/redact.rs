//! What the log may say about a failed send: the receiving server's reply often quotes
//! the recipient (`450 4.2.1 <ann@example.com>: mailbox busy`), and no address belongs
//! in a log line. The touch id says whose send it was.

/// `text` with every email address in it replaced by `<address>`.
pub fn without_addresses(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut at = 0;
    while let Some(offset) = text[at..].find('@') {
        let sign = at + offset;
        let start = (0..sign)
            .rev()
            .take_while(|&i| is_local_byte(bytes[i]))
            .last()
            .unwrap_or(sign);
        let end = (sign + 1..bytes.len())
            .take_while(|&i| is_domain_byte(bytes[i]))
            .last()
            .map_or(sign + 1, |i| i + 1);
        if start < sign && end > sign + 1 && start >= copied {
            out.push_str(&text[copied..start]);
            out.push_str("<address>");
            copied = end;
        }
        at = end.max(sign + 1);
    }
    out.push_str(&text[copied..]);
    out
}

/// What RFC 5322's dot-atom allows before the `@` (and a non-ASCII byte, for SMTPUTF8).
fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b) || b >= 0x80
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::without_addresses;

    #[test]
    fn addresses_in_a_servers_reply_are_replaced() {
        assert_eq!(
            without_addresses("450 4.2.1 <Ann.Smith+x@example.com>: mailbox busy"),
            "450 4.2.1 <<address>>: mailbox busy"
        );
        assert_eq!(
            without_addresses("to a@b.c and b@c.d, from zoë@exämple.it"),
            "to <address> and <address>, from <address>"
        );
        assert_eq!(without_addresses("no address @ here"), "no address @ here");
        assert_eq!(without_addresses("trailing@"), "trailing@");
        assert_eq!(without_addresses("@lead"), "@lead");
        assert_eq!(without_addresses(""), "");
    }
}
