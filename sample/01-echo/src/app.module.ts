import { Module } from '@nestjs/common';
import { EarwaxModule } from '../../../lib/index.js';
import { EchoController } from './echo.controller.js';

@Module({
  imports: [EarwaxModule.forRoot()],
  controllers: [EchoController],
})
export class AppModule {}
