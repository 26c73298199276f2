# A shim stand-in that is a real process, for what an in-process fake cannot show.
# usage: fake-shim-process.py hang|crash SOCKET
#   hang:  accepts connections, reads requests and never answers (a shim that does not stop)
#   crash: exits with status 3 as soon as a request arrives (a shim that dies mid-call); the socket file stays
import os, socket, sys, threading

mode, path = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o600)
server.listen(64)
print("ready", flush=True)

def serve(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.close()
            return
        if mode == "crash":
            os._exit(3)

while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
