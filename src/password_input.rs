//! Passwords for the administration commands, kept off the command line:
//! `--password` shows in `ps` and in shell history, so the same secret can
//! also come from standard input or from a prompt that does not echo.

use anyhow::bail;
use std::io::{BufRead, IsTerminal, Write};

#[derive(clap::Args, Clone)]
pub struct PasswordArgs {
    /// The password itself (visible in `ps` and shell history; for scripts).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

impl PasswordArgs {
    /// The password from the argument, standard input or a terminal prompt.
    pub fn read(self) -> anyhow::Result<String> {
        let password = match self.password {
            Some(p) => p,
            None if self.password_stdin => first_line(&mut std::io::stdin().lock())?,
            None if std::io::stdin().is_terminal() => prompt_twice()?,
            None => bail!(
                "no password given: use --password-stdin and write it to standard input, \
                 run on a terminal to be prompted, or pass --password"
            ),
        };
        if password.is_empty() {
            bail!("the password must not be empty");
        }
        Ok(password)
    }
}

/// One line without its line ending (`\n` or `\r\n`); nothing else is trimmed,
/// since spaces may be part of a password.
fn first_line(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let end = line.strip_suffix('\n').unwrap_or(&line);
    Ok(end.strip_suffix('\r').unwrap_or(end).to_string())
}

fn prompt_twice() -> anyhow::Result<String> {
    let first = prompt("Password: ")?;
    let again = prompt("Password (again): ")?;
    if first != again {
        bail!("the passwords do not match");
    }
    Ok(first)
}

/// Asks on standard error and reads standard input with echo off.
fn prompt(text: &str) -> anyhow::Result<String> {
    let mut stderr = std::io::stderr();
    stderr.write_all(text.as_bytes())?;
    stderr.flush()?;
    let _quiet = EchoOff::on_stdin()?;
    first_line(&mut std::io::stdin().lock())
}

/// The terminal settings to put back when the prompt ends, also from the
/// SIGINT handler (so Ctrl-C at the prompt does not leave the shell silent).
static SAVED_TERMIOS: std::sync::OnceLock<libc::termios> = std::sync::OnceLock::new();

/// Echo off on standard input while alive (the typed newline still shows).
struct EchoOff;

impl EchoOff {
    fn on_stdin() -> std::io::Result<EchoOff> {
        let mut current = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the termios it is given when it returns 0.
        let saved = unsafe {
            if libc::tcgetattr(libc::STDIN_FILENO, current.as_mut_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            current.assume_init()
        };
        let _ = SAVED_TERMIOS.set(saved);
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            libc::signal(
                libc::SIGINT,
                restore_and_die as *const () as libc::sighandler_t,
            );
        }
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: a termios obtained from tcgetattr, changed in two flags.
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &quiet) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(EchoOff)
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        restore_termios();
        // SAFETY: back to the default disposition once the prompt is over.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
    }
}

fn restore_termios() {
    if let Some(saved) = SAVED_TERMIOS.get() {
        // SAFETY: the settings tcgetattr returned for this descriptor.
        unsafe {
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, saved);
        }
    }
}

extern "C" fn restore_and_die(signal: libc::c_int) {
    restore_termios();
    // SAFETY: signal and raise are async-signal-safe; the default action ends the process.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn first_line_strips_only_the_line_ending() {
        let read = |s: &str| first_line(&mut s.as_bytes()).unwrap();
        assert_eq!(read("pw\n"), "pw");
        assert_eq!(read("pw\r\nsecond\n"), "pw");
        assert_eq!(read(" sp ace \n"), " sp ace ");
        assert_eq!(read("no-newline"), "no-newline");
        assert_eq!(read(""), "");
    }
}
