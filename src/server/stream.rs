//! Connection streams: a deadline for the first bytes of a connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// Waits for a client's first bytes, for at most `timeout`, and gives back a stream that
/// replays them. `None` when the client closed or stayed silent.
///
/// hyper's HTTP/1 header timeout starts only once the protocol is known, and detecting the
/// protocol (HTTP/1.1 or an HTTP/2 preface) waits for bytes without a deadline: a client that
/// completes the TLS handshake and then sends nothing would hold its connection slot forever.
pub async fn first_bytes<T: AsyncRead + Unpin>(
    mut io: T,
    timeout: Duration,
) -> io::Result<Option<Prepend<T>>> {
    let mut head = vec![0u8; 8 * 1024];
    match tokio::time::timeout(timeout, io.read(&mut head)).await {
        Err(_) => Ok(None),
        Ok(Ok(0)) => Ok(None),
        Ok(Ok(n)) => {
            head.truncate(n);
            Ok(Some(Prepend { head, pos: 0, io }))
        }
        Ok(Err(e)) => Err(e),
    }
}

/// A stream that first yields `head`, then reads from `io`.
#[derive(Debug)]
pub struct Prepend<T> {
    head: Vec<u8>,
    pos: usize,
    io: T,
}

impl<T> Prepend<T> {
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prepend<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.pos < self.head.len() {
            let n = buf.remaining().min(self.head.len() - self.pos);
            let start = self.pos;
            buf.put_slice(&self.head[start..start + n]);
            self.pos += n;
            if self.pos == self.head.len() {
                self.head = Vec::new();
                self.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prepend<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn replays_the_first_bytes_then_reads_on() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut io = first_bytes(server, Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
        client.write_all(b"Host: x\r\n").await.unwrap();
        drop(client);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\nHost: x\r\n");
    }

    #[tokio::test]
    async fn silent_clients_time_out() {
        let (_client, server) = tokio::io::duplex(64);
        let io = first_bytes(server, Duration::from_millis(20))
            .await
            .unwrap();
        assert!(io.is_none());
    }
}
