package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The parent and the sandbox init (the "zygote", PID 1 of the sandbox)
// talk over a SOCK_SEQPACKET socket pair: one JSON message per packet,
// with file descriptors attached as SCM_RIGHTS.
//
//	parent → init   initConfig          (once; the init then builds the sandbox)
//	init → parent   initReport          (stage "ready", or the stage that failed)
//	parent → init   execRequest + fds   (stdin, stdout, stderr, extra files)
//	init → parent   execReply           (when the payload and its leftovers are gone)
//	parent → init   execRequest{Kill}   (at any time during an exec: timeout)

// execRequest asks the init to run one payload. Files lists the fd numbers
// the attached descriptors take in the payload, in order.
type execRequest struct {
	Kill  bool     `json:"kill,omitempty"`
	Argv  []string `json:"argv,omitempty"`
	Env   []string `json:"env,omitempty"`
	Cwd   string   `json:"cwd,omitempty"`
	Files []int    `json:"files,omitempty"`
}

// execReply reports how a payload ended.
type execReply struct {
	Started bool `json:"started"`
	Errno   int  `json:"errno,omitempty"`
	// BadWorkdir: the payload did not start because of its working
	// directory, not its command.
	BadWorkdir bool   `json:"bad_workdir,omitempty"`
	Error      string `json:"error,omitempty"`
	Exited     bool   `json:"exited"`
	ExitCode   int    `json:"exit_code"`
	Signal     int    `json:"signal,omitempty"`
	UtimeUS    int64  `json:"utime_us"`
	StimeUS    int64  `json:"stime_us"`
	MaxRSSKB   int64  `json:"max_rss_kb"`
}

// maxMessage bounds one packet; larger messages are refused.
const maxMessage = 1 << 20

// errPeerGone means the other end of the socket closed.
var errPeerGone = errors.New("process: sandbox init closed the connection")

func sendMsg(fd int, v any, files ...int) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(data) > maxMessage {
		return fmt.Errorf("%w: %d bytes", ErrRequestTooLarge, len(data))
	}
	var oob []byte
	if len(files) > 0 {
		oob = unix.UnixRights(files...)
	}
	for {
		err = unix.Sendmsg(fd, data, oob, nil, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// recvMsg reads one message into v and returns the descriptors that came
// with it (as files the caller owns).
func recvMsg(fd int, buf []byte, v any) ([]*os.File, error) {
	oob := make([]byte, unix.CmsgSpace(64*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	files, ferr := parseRights(oob[:oobn])
	if n == 0 && len(files) == 0 {
		return nil, errPeerGone
	}
	if ferr != nil {
		closeAll(files)
		return nil, ferr
	}
	if err := json.Unmarshal(buf[:n], v); err != nil {
		closeAll(files)
		return nil, fmt.Errorf("process: bad message: %w", err)
	}
	return files, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "passed"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
