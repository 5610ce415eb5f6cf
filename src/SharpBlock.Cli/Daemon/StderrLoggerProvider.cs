using System.Globalization;
using Microsoft.Extensions.Logging;

namespace SharpBlock.Cli.Daemon;

/// <summary>
/// The daemon's log: one line per message on stderr, "HH:mm:ss.fff level: category[event] message", written
/// synchronously under a lock. Microsoft.Extensions.Logging.Console did the same with a queue, a background
/// thread and the options/configuration stack behind it, about a fifth of an idle daemon's memory; a
/// storage daemon logs rarely, and a line that is written before the process dies is worth more.
/// </summary>
internal sealed class StderrLoggerProvider(LogLevel minimum) : ILoggerProvider
{
    private readonly Lock _gate = new();
    private readonly LogLevel _minimum = minimum;

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private void Write(string line)
    {
        lock (_gate)
            Console.Error.Write(line);
    }

    private static string Level(LogLevel level) => level switch
    {
        LogLevel.Trace => "trce",
        LogLevel.Debug => "dbug",
        LogLevel.Information => "info",
        LogLevel.Warning => "warn",
        LogLevel.Error => "fail",
        _ => "crit",
    };

    private sealed class Logger(StderrLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None && logLevel >= owner._minimum;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
                return;
            string message = formatter(state, exception);
            string time = DateTime.Now.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture);
            string line = $"{time} {Level(logLevel)}: {category}[{eventId.Id}] {message}\n";
            if (exception != null)
                line += exception + "\n";
            owner.Write(line);
        }
    }
}
